"""Where the middleware's cost goes: `instrument(app)` with one part of `PrometheusMiddleware`
switched off at a time, served side by side with bare and with the whole middleware.

    .venv/bin/python bench/http_breakdown.py [--rounds 6] [--duration 8] [--parts no-header,...]

Each variant is a temporary copy of the `exporter` package in which one part is cut out of
`exporter/http/middleware.py` by an exact source edit; the script stops if the source no longer
holds the text it edits (the variant would silently be the whole middleware otherwise), and
each server must show its variant's name in its `/metrics` HELP text and behave as the variant
should (header present or not, requests counted or not). The `copy` variant edits nothing: its
gain, zero in theory, shows the noise. Variants run as
`http_overhead.py --together` runs them: each round serves bare, ours and at most `--group`
variants at once (all servers on core 0, one wrk each at once on core 1), fresh servers every
round. A variant's "gain" is its ratio to bare minus ours' ratio to bare in the same round: what
switching that part off buys. The variants are not products: some count nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_overhead as bench

from exporter.http.metrics import REQUESTS_HELP

PACKAGE = Path(__file__).resolve().parent.parent / "exporter"
MIDDLEWARE = "http/middleware.py"
# Where `__call__` starts the request's own work, after the path look-up.
TRACE_LINE = ("        trace = trace_from_headers(scope.get(\"headers\") or (), series.route, "
              "series.method)\n")
ID_RANGE = 1000  # wrk cycles /items/1..N, as http_overhead.py does by default
# A line at module level, after the imports: where the `no-trace-id` variant adds its constant.
LOGGER_LINE = '_log = logging.getLogger("exporter.middleware")\n'
FINISH = "                series.finish(status, ended - start, trace.trace_id, ended)\n"


@dataclass(frozen=True)
class Edit:
    """Replace `old` (found exactly `count` times) by `new`; with `tail`, replace everything
    from `old` to the end of the file."""

    old: str
    new: str
    count: int = 1
    tail: bool = False

    def apply(self, text: str, where: str) -> str:
        found = text.count(self.old)
        if found != self.count:
            raise bench.BenchError(
                f"{where}: expected {self.count} x {self.old!r}, found {found}: the middleware "
                "changed; update bench/http_breakdown.py"
            )
        if self.tail:
            return text[: text.index(self.old)] + self.new
        return text.replace(self.old, self.new)


@dataclass(frozen=True)
class Part:
    what: str  # what is switched off
    edits: tuple[Edit, ...]
    header: bool  # responses still carry X-Trace-Id
    counted: bool  # /metrics still counts each request


SKELETON = """        start = perf_counter()
        status = 500
        ended = 0.0

        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal status, ended
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body" and not ended and not message.get("more_body"):
                ended = perf_counter()
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if not ended:
                ended = perf_counter()
"""

PARTS: dict[str, Part] = {
    # No edit: the whole middleware served from a copy, like the variants. Its gain, 0 in
    # theory, shows the noise of the figures (and that serving a copy changes nothing).
    "copy": Part("nothing (an unedited copy: the noise control)", (), header=True, counted=True),
    "no-header": Part(
        "the X-Trace-Id response header",
        (Edit('                message["headers"] = [\n'
              '                    *(message.get("headers") or ()), '
              '(TRACE_HEADER, trace.trace_id.encode())\n'
              '                ]\n', ""),),
        header=False, counted=True,
    ),
    "no-trace-id": Part(
        "reading trace headers and making ids (one fixed trace context for every request)",
        (Edit(TRACE_LINE, "        trace = _FIXED\n"),
         Edit(LOGGER_LINE, LOGGER_LINE + "_FIXED = trace_from_headers([])\n")),
        header=True, counted=True,
    ),
    "no-contextvar": Part(
        "setting and resetting the trace contextvar",
        (Edit("        token = _current.set(trace)\n", ""),
         Edit("                _current.reset(token)\n", "                pass\n")),
        header=True, counted=True,
    ),
    "no-series": Part(
        "the metrics (series start and finish: counter, histogram, exemplar, gauge)",
        (Edit("        series.start()\n", ""), Edit(FINISH, "                pass\n", count=2)),
        header=True, counted=False,
    ),
    "skeleton": Part(
        "all but the path look-up and a send wrapper that reads the status and the clock",
        (Edit(TRACE_LINE, SKELETON, tail=True),),
        header=False, counted=False,
    ),
    "look-up-only": Part(
        "all but the path look-up (the app gets the server's own send)",
        (Edit(TRACE_LINE, "        await self.app(scope, receive, send)\n", tail=True),),
        header=False, counted=False,
    ),
}


def _marker(name: str) -> str:
    return f"[bench variant: {name}]"


def _make_copy(name: str, part: Part, root: Path) -> Path:
    """A copy of the package with `part` cut out; the directory to serve it from."""
    home = root / name
    shutil.copytree(PACKAGE, home / "exporter", ignore=shutil.ignore_patterns("__pycache__"))
    source = home / "exporter" / MIDDLEWARE
    text = source.read_text()
    for edit in part.edits:
        text = edit.apply(text, f"{name}: {MIDDLEWARE}")
    source.write_text(text)
    metrics = home / "exporter" / "http" / "metrics.py"
    help_line = f'REQUESTS_HELP = "{REQUESTS_HELP}"'
    metrics.write_text(Edit(help_line, help_line[:-1] + f' {_marker(name)}"').apply(
        metrics.read_text(), f"{name}: http/metrics.py"))
    return home


def _checker(part: Part) -> Callable[[str, str], None]:
    def check(name: str, base: str) -> None:
        item = bench._item(name, base)
        text = httpx.get(f"{base}/metrics", timeout=5).text
        if _marker(name) not in text:
            raise bench.BenchError(f"{name}: the server does not run the edited copy")
        if ("x-trace-id" in item.headers) != part.header:
            raise bench.BenchError(f"{name}: X-Trace-Id present={not part.header}, unexpected")
        if (bench._route_count("ours", base) >= 1) != part.counted:
            raise bench.BenchError(f"{name}: requests counted={not part.counted}, unexpected")
    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=bench._positive(int), default=6)
    parser.add_argument("--duration", type=bench._positive(int), default=8,
                        help="seconds per run")
    parser.add_argument("--connections", type=bench._positive(int), default=50)
    parser.add_argument("--group", type=bench._positive(int), default=3,
                        help="variants served at once with bare and ours (more servers on one "
                             "core make wrk time out)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated, of: {', '.join(PARTS)}")
    args = parser.parse_args()
    names = [n.strip() for n in args.parts.split(",") if n.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        sys.exit(f"http_breakdown: unknown --parts {', '.join(unknown) or '(none)'}; "
                 f"choose from {', '.join(PARTS)}")
    bench._require_tools()

    ratios: dict[str, list[float]] = {"ours": []}
    cpu: dict[str, list[float]] = {"ours": []}
    gains: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        script = root / "items.lua"
        script.write_text(bench.WRK_SCRIPT)
        try:
            homes = {name: _make_copy(name, PARTS[name], root) for name in names}
        except bench.BenchError as exc:
            sys.exit(f"http_breakdown: {exc}")

        def serve(variant: str) -> bench._Served:
            if variant in ("bare", "ours"):
                return bench._Served(variant, script, args.connections, ID_RANGE)
            part = PARTS[variant]
            return bench._Served(variant, script, args.connections, ID_RANGE,
                                 factory=bench.FACTORIES["ours"], cwd=homes[variant],
                                 check=_checker(part), counted=part.counted)

        groups = [names[i:i + args.group] for i in range(0, len(names), args.group)]
        for group in groups:
            variants = ("bare", "ours", *group)
            for round_no in range(1, args.rounds + 1):
                try:
                    measured = bench._measure_together(
                        bench._rotated(variants, round_no), script, args.duration,
                        args.connections, ID_RANGE, serve)
                except bench.BenchError as exc:
                    sys.exit(f"http_breakdown: {exc}")
                bare = measured["bare"]
                ours = measured["ours"].rps / bare.rps
                ratios["ours"].append(ours)
                cpu["ours"].append(bare.cpu_us / measured["ours"].cpu_us)
                line = [f"ours {ours:.3f}"]
                for name in group:
                    ratio = measured[name].rps / bare.rps
                    ratios.setdefault(name, []).append(ratio)
                    cpu.setdefault(name, []).append(bare.cpu_us / measured[name].cpu_us)
                    gains.setdefault(name, []).append(ratio - ours)
                    line.append(f"{name} {ratio:.3f}")
                print(f"round {round_no} ({bare.rps:,.0f} req/s bare): " + ", ".join(line),
                      flush=True)

    print(f"\nGET /items/{{1..{ID_RANGE}}}, wrk -t1 -c{args.connections} -d{args.duration}s, "
          f"{args.rounds} rounds per group of variants; each round serves bare, ours and the "
          f"group at once on core {bench.SERVER_CORE}, wrk on core {bench.CLIENT_CORE}. "
          "Ratios: medians of per-round ratios to bare; gain: median of per-round (variant - "
          "ours) in points of bare.\n")
    print("| variant | switched off | ratio to bare | CPU ratio | gain over ours |")
    print("| --- | --- | ---: | ---: | ---: |")
    print(f"| ours | nothing (the whole middleware) | {statistics.median(ratios['ours']):.3f} | "
          f"{statistics.median(cpu['ours']):.3f} | |")
    for name in names:
        print(f"| {name} | {PARTS[name].what} | {statistics.median(ratios[name]):.3f} | "
              f"{statistics.median(cpu[name]):.3f} | "
              f"{100 * statistics.median(gains[name]):+.1f} |")


if __name__ == "__main__":
    main()
