"""Throughput cost of HTTP instrumentation: bare FastAPI vs `instrument(app)`, vs everything
a user runs with it, vs prometheus-fastapi-instrumentator and FastAPI's own OpenTelemetry, with
wrk on loopback against one uvicorn worker per variant.

    .venv/bin/python bench/http_overhead.py [--rounds 3] [--duration 8] [--variants default]

`--variants`: `default` (bare, ours, everything, instrumentator), `otel` (bare, ours and
FastAPI's own telemetry with the SDK: both halves, spans only, metrics only, ours plus its
spans), `all`, or names separated by commas; the variants are described in `variants.py`.

The server runs on core 0 and wrk on core 1 (taskset). Variants alternate inside each round so
slow drift on a shared machine hits all of them alike, and the order rotates from round to
round. With `--together`, each round serves every variant at once instead (all servers on core
0, one wrk per server at once on core 1): the machine's speed swings from second to second,
which move one run against the next by several per cent here, then hit every variant alike,
and each round's ratio reads the variants' relative cost per request. `--aa` adds a second bare
server ("bare-again"): its ratio to bare, 1.0 in theory, shows the noise of the figures.
Before measuring, each server is checked
to really be the variant it claims (its /metrics, its X-Trace-Id header, spans reaching the
exporter, access lines reaching the files and the Loki receiver); afterwards, its request
counter must account for every request wrk made, and Loki must receive an access line for each,
so a broken server cannot pass for a fast one. Goals: ours >= 0.95 of bare and above the
instrumentator; everything >= 0.85 of bare; ours plus FastAPI's spans >= 0.93 of its spans
alone; ours >= 1.25x FastAPI's own metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from variants import (
    GOALS,
    GROUPS,
    VARIANTS,
    BenchError,
    check,
    free_port,
    loki_lines,
    parse_variants,
    route_count,
    server_env,
    surroundings,
)

BENCH_DIR = Path(__file__).resolve().parent
FACTORIES = {name: v.factory for name, v in VARIANTS.items()}
SHIPPED_WITHIN = 30  # seconds after a run for Loki to have an access line of every request
SERVER_CORE, CLIENT_CORE = "0", "1"
WARMUP_SECONDS = 2
START_SECONDS = 90  # a loaded machine takes tens of seconds to start seven servers at once
MIN_ROUNDS_TO_JUDGE = 3  # fewer: the verdict on the goal is printed with a warning

# wrk asks for /items/<id> with the id cycling through 1..N, so the route-template cache learns
# N distinct paths; `done` prints one machine-readable line (latencies in microseconds).
WRK_SCRIPT = """
local n = 0
local ids = tonumber(os.getenv("BENCH_ID_RANGE") or "1000")
request = function()
  n = n + 1
  return wrk.format("GET", "/items/" .. ((n % ids) + 1))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Measurement:
    """One wrk run against one variant."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float = 0.0  # the server process's user + system time during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """Server CPU per request: what the variant costs, whatever wrk's scheduling did."""
        return self.cpu_seconds / self.requests * 1e6


def _start_server(
    variant: str, port: int, factory: str | None = None, cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """uvicorn serving `factory` (default: the variant's); `cwd` comes first on the server's
    import path, so an `exporter` package there is imported instead of the installed one."""
    env = server_env(extra_env or {})
    command = [
        "taskset", "-c", SERVER_CORE, sys.executable, "-m", "uvicorn", "--factory",
        factory or FACTORIES[variant], "--app-dir", str(BENCH_DIR), "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, cwd=cwd)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode(errors="replace") if server.stderr else ""
            raise BenchError(f"{variant} server exited with {server.returncode}:\n{err}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    _stop_server(server)
    raise BenchError(f"{variant} server did not answer /ping within {START_SECONDS} s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _route_count(variant: str, base: str) -> float:
    """Requests to `/items/{item_id}` the variant's own metrics have counted so far."""
    return route_count(VARIANTS[variant], base)


def _item(variant: str, base: str) -> httpx.Response:
    """GET /items/7 from the server; fails unless it answers as the bench app does."""
    item = httpx.get(f"{base}/items/7", timeout=5)
    if item.status_code != 200 or item.json().get("item_id") != 7:
        raise BenchError(f"{variant}: GET /items/7 answered {item.status_code} {item.text!r}")
    return item


def _check_variant(variant: str, base: str, env: dict[str, str] | None = None) -> None:
    """Fail unless the server behaves as `variant` should: same app, right instrumentation
    (`env`: what `surroundings` gave the server)."""
    check(VARIANTS[variant], base, env or {})


def _start_wrk(
    base: str, script: Path, seconds: int, connections: int, id_range: int
) -> subprocess.Popen[str]:
    command = [
        "taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--timeout", "30s", "-s", str(script), base,
    ]
    env = {**os.environ, "BENCH_ID_RANGE": str(id_range)}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wrk_result(wrk: subprocess.Popen[str]) -> Measurement:
    stdout, stderr = wrk.communicate()
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH ")), None)
    if wrk.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({wrk.returncode}):\n{stdout}{stderr}")
    requests, micros, *errors, p50, p99 = (int(v) for v in line.split()[1:])
    if any(errors):
        raise BenchError(
            "wrk saw errors (connect, read, write, status, timeout) = "
            f"{tuple(errors)}:\n{stdout}"
        )
    return Measurement(requests, micros / 1e6, p50 / 1000, p99 / 1000)


def _run_wrk(
    base: str, script: Path, seconds: int, connections: int, id_range: int
) -> Measurement:
    return _wrk_result(_start_wrk(base, script, seconds, connections, id_range))


class _Served:
    """One variant's server, checked and warmed up; what it counted before a measured run."""

    def __init__(
        self, variant: str, script: Path, connections: int, id_range: int, *,
        factory: str | None = None, cwd: Path | None = None,
        check: Callable[[str, str], None] | None = None, counted: bool | None = None,
    ) -> None:
        """`factory`, `cwd`: see `_start_server`; `check(variant, base)` raises BenchError
        unless the server is the variant (default: `_check_variant`); `counted`: whether its
        metrics count each request (default: the variant's)."""
        self.variant = variant
        known = VARIANTS.get(variant)
        self.counted = (known is not None and known.counts is not None
                        ) if counted is None else counted
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self._around = surroundings(known, ("taskset", "-c", CLIENT_CORE)) if known else None
        self.env = self._around.__enter__() if self._around else {}
        self.counted_before = self.cpu_before = 0.0
        self.shipped_before = 0
        try:
            self.server = _start_server(variant, port, factory, cwd, self.env)
        except BaseException:
            self._leave()
            raise
        try:
            if check is None:
                _check_variant(variant, self.base, self.env)
            else:
                check(variant, self.base)
            _run_wrk(self.base, script, WARMUP_SECONDS, connections, id_range)
        except BaseException:
            self.stop()
            raise

    def _leave(self) -> None:
        if self._around is not None:
            around, self._around = self._around, None
            around.__exit__(None, None, None)

    def before_run(self) -> None:
        if self.counted:
            self.counted_before = _route_count(self.variant, self.base)
        if self.env:
            self._wait_shipped(_route_count(self.variant, self.base))
            self.shipped_before = loki_lines(self.env)
        self.cpu_before = _cpu_seconds(self.server.pid)  # taskset execs the server: same pid

    def after_run(self, result: Measurement, connections: int) -> Measurement:
        result = dataclasses.replace(
            result, cpu_seconds=_cpu_seconds(self.server.pid) - self.cpu_before
        )
        if self.counted:
            counted = _route_count(self.variant, self.base) - self.counted_before
            # wrk does not count requests in flight when it (or the warm-up) stops; the server does.
            if not result.requests <= counted <= result.requests + 2 * connections:
                raise BenchError(
                    f"{self.variant}: wrk made {result.requests} requests, "
                    f"metrics counted {counted}"
                )
        if self.env:
            self._wait_shipped(self.shipped_before + result.requests)
        return result

    def _wait_shipped(self, lines: float) -> None:
        """Wait until Loki has `lines` lines (an access line per request, plus the app's):
        a shipper that fell behind would look cheaper than it is."""
        deadline = time.monotonic() + SHIPPED_WITHIN
        while (shipped := loki_lines(self.env)) < lines:
            if time.monotonic() > deadline:
                raise BenchError(f"{self.variant}: Loki got {shipped:,} lines within "
                                 f"{SHIPPED_WITHIN} s, expected at least {lines:,.0f}")
            time.sleep(0.2)

    def stop(self) -> None:
        try:
            _stop_server(self.server)
        finally:
            self._leave()


def _measure(
    variant: str, script: Path, seconds: int, connections: int, id_range: int
) -> Measurement:
    served = _Served(variant, script, connections, id_range)
    try:
        served.before_run()
        result = _run_wrk(served.base, script, seconds, connections, id_range)
        return served.after_run(result, connections)
    finally:
        served.stop()


def _measure_together(
    variants: tuple[str, ...], script: Path, seconds: int, connections: int, id_range: int,
    serve: Callable[[str], _Served] | None = None,
) -> dict[str, Measurement]:
    """Every variant served at once (all on the server core), one wrk each at once; `serve`
    starts a variant's server (default: `_Served` with the variant's own factory)."""
    served: list[_Served] = []
    try:
        for variant in variants:
            served.append(serve(variant) if serve is not None
                          else _Served(variant, script, connections, id_range))
        for one in served:
            one.before_run()
        runs = [_start_wrk(one.base, script, seconds, connections, id_range) for one in served]
        results = [_wrk_result(run) for run in runs]
        return {
            one.variant: one.after_run(result, connections)
            for one, result in zip(served, results, strict=True)
        }
    finally:
        for one in served:
            one.stop()


def _rotated(variants: tuple[str, ...], round_no: int) -> tuple[str, ...]:
    """The variants in round `round_no`'s order: each round starts with another variant, so
    none always runs (or starts) first or last."""
    shift = (round_no - 1) % len(variants)
    return variants[shift:] + variants[:shift]


def _table(results: dict[str, list[Measurement]]) -> str:
    variants = tuple(results)
    bare = results["bare"]
    rows = [
        "| variant | req/s (median) | req/s per round | ratio to bare | p50 ms | p99 ms "
        "| server CPU µs/request | CPU ratio (bare / variant) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant in variants:
        runs = results[variant]
        ratio = statistics.median(r.rps / b.rps for r, b in zip(runs, bare, strict=True))
        cpu_ratio = statistics.median(b.cpu_us / r.cpu_us for r, b in zip(runs, bare, strict=True))
        rows.append(
            f"| {variant} | {statistics.median(r.rps for r in runs):,.0f} | "
            + ", ".join(f"{r.rps:,.0f}" for r in runs)
            + f" | {ratio:.3f} | {statistics.median(r.p50_ms for r in runs):.2f} | "
            f"{statistics.median(r.p99_ms for r in runs):.2f} | "
            f"{statistics.median(r.cpu_us for r in runs):.0f} | {cpu_ratio:.3f} |"
        )
    return "\n".join(rows)


def _require_tools() -> None:
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"http_overhead: {', '.join(missing)} not found on PATH "
                 "(Debian: apt-get install wrk util-linux)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("http_overhead: needs 2 cores (server on core 0, wrk on core 1)")


def _positive(kind: Callable[[str], int]) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = kind(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
        return value
    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=_positive(int), default=3)
    parser.add_argument("--duration", type=_positive(int), default=8, help="seconds per run")
    parser.add_argument("--connections", type=_positive(int), default=50)
    parser.add_argument("--id-range", type=_positive(int), default=1000,
                        help="wrk cycles /items/1..N (distinct paths the route cache sees)")
    parser.add_argument("--together", action="store_true",
                        help="serve all variants at once in each round, one wrk each at once")
    parser.add_argument("--aa", action="store_true",
                        help="add a second bare server: its ratio shows the figures' noise")
    parser.add_argument("--variants", default="default",
                        help=f"a group ({', '.join(GROUPS)}) or variant names separated by "
                             f"commas, of: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    try:
        chosen = parse_variants(args.variants)
    except ValueError as exc:
        parser.error(f"--variants {args.variants!r}: {exc}")
    _require_tools()

    variants = chosen + (("bare-again",) if args.aa and "bare-again" not in chosen else ())
    results: dict[str, list[Measurement]] = {v: [] for v in variants}

    def report(round_no: int, variant: str, m: Measurement) -> None:
        results[variant].append(m)
        print(f"round {round_no} {variant:>14}: {m.rps:9,.0f} req/s  "
              f"p50 {m.p50_ms:.2f} ms  p99 {m.p99_ms:.2f} ms  "
              f"server CPU {m.cpu_us:.0f} µs/request", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "items.lua")
        script.write_text(WRK_SCRIPT)
        for round_no in range(1, args.rounds + 1):
            order = _rotated(variants, round_no)
            try:
                if args.together:
                    measured = _measure_together(
                        order, script, args.duration, args.connections, args.id_range
                    )
                    for variant in variants:
                        report(round_no, variant, measured[variant])
                else:
                    for variant in order:
                        report(round_no, variant, _measure(
                            variant, script, args.duration, args.connections, args.id_range
                        ))
            except BenchError as exc:
                sys.exit(f"http_overhead: {exc}")

    if args.together:
        how = (f"all {len(variants)} variants served at once, one uvicorn worker each on core "
               f"{SERVER_CORE}, one wrk each at once on core {CLIENT_CORE}")
    else:
        how = (f"variants one after another, one uvicorn worker on core {SERVER_CORE}, wrk on "
               f"core {CLIENT_CORE}")
    print(f"\nGET /items/{{1..{args.id_range}}}, wrk -t1 -c{args.connections} "
          f"-d{args.duration}s, {args.rounds} rounds, {how}. Medians over rounds; ratio = "
          "median of per-round ratios to bare.\n")
    print(_table(results))
    print()
    for variant in variants:
        print(f"- {variant}: {VARIANTS[variant].text}")
    print()
    for goal, (a, b, at_least) in GOALS.items():
        if a in results and b in results:
            ratio = statistics.median(
                x.rps / y.rps for x, y in zip(results[a], results[b], strict=True))
            print(f"goal {goal}: {'met' if ratio >= at_least else 'NOT met'} ({ratio:.3f})")
    if args.rounds < MIN_ROUNDS_TO_JUDGE:
        print(f"Only {args.rounds} round(s): one run of the same server differs from the next by "
              f"several per cent here; judge the goal from --rounds {MIN_ROUNDS_TO_JUDGE} or more.")
    print("The CPU ratio (server CPU per request, bare / variant) does not depend on how wrk and "
          "the server shared the machine; bench/http_instructions.py counts instructions.")


if __name__ == "__main__":
    main()
