"""What the wider scrubber costs per log line: `JsonFormatter` rendering the same lines with the
scrubber of a baseline revision (read from git) and with the current one, side by side.

    .venv/bin/python bench/scrub_cost.py [--baseline 866baa0] [--lines 2000] [--rounds 100]

Variants: `old` (the baseline's `Scrubber`, with its built-in hints and default redact keys, in
today's formatter), `old-2` (an identical second instance: its ratio to `old` is the noise
floor), `new` (the current `Redactor`). Each round renders the same mix of lines (fresh records,
made before the clock starts) once per variant, in a rotating order; the figure is the median
over rounds of µs per line, and ratio = median of per-round ratios to `old`. One process, one
core, CPU time of the rendering thread (`time.thread_time`), no garbage collection while
timed: still, read the A/A row before the `new` one.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporter.errors.scrub import Scrubber
from exporter.logs.formatter import REDACTED, JsonFormatter

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE = "866baa0"  # main when the scrubber was widened (issue 20, item 5)

# (message, args, extra): what services log; most lines hold no secret at all (PLAIN), a few do
# (SECRET).
Line = tuple[str, tuple[Any, ...], dict[str, Any]]
PLAIN: list[Line] = [
    ("order %s placed for customer %s", (1234, 987), {"order_id": 1234, "amount": 12.5}),
    ("user %s logged in", ("alice",), {"user_id": 17, "session_id": "c2Vzc2lvbi0x"}),
    ("calling %s", ("https://api.example.com/v1/items?page=2&per_page=50",), {}),
    ("payment failed: card declined", (), {"order_id": 99, "reason": "insufficient_funds"}),
    ("cache miss for key %s", ("product:42",), {"cache_key": "product:42"}),
    ("retrying inventory call (attempt %d of %d)", (2, 3), {"delay_ms": 250}),
    ("sync finished: %d items, %d skipped", (120, 3), {"source": "erp", "took_ms": 812.4}),
]
SECRET: list[Line] = [
    ("request to %s with Authorization: Bearer %s", ("/v2/pay", "tok.123456789"), {}),
    ("connect to postgres://shop:%s@db:5432/shop failed", ("pg-pass",), {"attempt": 1}),
    ("config loaded", (), {"config": {"db": {"host": "db", "password": "x"}, "debug": False}}),
    ("headers seen", (), {"headers": {"accept": "application/json", "authorization": "Basic x",
                                      "user-agent": "curl/8.5"}}),
]
# Access lines (render_fields), as the access-log observer makes them.
ACCESS = {
    "message": "GET /items/42 200", "method": "GET", "route": "/items/{item_id}",
    "path": "/items/42", "status": 200, "duration_ms": 3.217, "client": "127.0.0.1",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
}


def baseline_scrubber(revision: str) -> Scrubber:
    """The log lines' scrubber of `revision`: its Scrubber class, built-in hints and default
    redact keys, read from git."""
    def module(path: str) -> types.ModuleType:
        source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
        loaded = types.ModuleType(f"baseline_{Path(path).stem}")
        sys.modules[loaded.__name__] = loaded  # dataclasses and typing look modules up
        exec(compile(source, f"{revision}:{path}", "exec"), loaded.__dict__)
        return loaded

    scrub = module("exporter/errors/scrub.py")
    defaults = module("exporter/config/defaults.py")
    made: Scrubber = scrub.Scrubber(
        (*scrub.SECRET_KEY_HINTS, *defaults.DEFAULT_REDACT_KEYS), REDACTED)
    return made


def formatter_with(scrubber: Scrubber) -> JsonFormatter:
    formatter = JsonFormatter("shop", "prod")
    formatter.redactor = scrubber  # type: ignore[assignment]  # same interface, older rules
    return formatter


def records(lines: list[Line], count: int) -> list[logging.LogRecord]:
    made = []
    for index in range(count):
        message, args, extra = lines[index % len(lines)]
        record = logging.LogRecord("shop.orders", logging.INFO, __file__, 1, message,
                                   args or None, None)
        record.__dict__.update(extra)
        made.append(record)
    return made


def timed(render: Callable[[], None]) -> float:
    """CPU seconds of this thread for `render()`, without a garbage collection inside."""
    gc.collect()
    gc.disable()
    try:
        start = time.thread_time()
        render()
        return time.thread_time() - start
    finally:
        gc.enable()


def run(baseline: str, lines: int, rounds: int) -> None:
    old = baseline_scrubber(baseline)
    variants = {
        "old": formatter_with(old),
        "old-2": formatter_with(baseline_scrubber(baseline)),
        "new": JsonFormatter("shop", "prod"),
    }
    # The lines must render the same way in every variant but for what is scrubbed.
    sample = records(PLAIN + SECRET, len(PLAIN + SECRET))
    for name, formatter in variants.items():
        for record in sample:
            record.__dict__.pop("_exporter_json", None)
        assert all(formatter.format(r) for r in sample), name
    per_line: dict[tuple[str, str], list[float]] = {}
    names = list(variants)
    for round_index in range(rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            formatter = variants[name]
            for kind, mix in (("plain records", PLAIN), ("records with secrets", SECRET)):
                batch = records(mix, lines)
                seconds = timed(lambda: [formatter.format(r) for r in batch])  # noqa: B023
                per_line.setdefault((kind, name), []).append(seconds / lines * 1e6)
            seconds = timed(lambda: [formatter.render_fields(0.0, "info", "exporter.access",  # noqa: B023
                                                             ACCESS) for _ in range(lines)])
            per_line.setdefault(("access", name), []).append(seconds / lines * 1e6)
    print(f"baseline {baseline}, {lines} lines x {rounds} rounds, median µs per line\n")
    print("| lines | variant | µs/line | ratio to old |")
    print("| --- | --- | --- | --- |")
    for kind in ("plain records", "records with secrets", "access"):
        base = per_line[(kind, "old")]
        for name in names:
            times = per_line[(kind, name)]
            ratio = statistics.median(t / b for t, b in zip(times, base, strict=True))
            print(f"| {kind} | {name} | {statistics.median(times):.2f} | {ratio:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help="git revision whose scrubber is the reference")
    parser.add_argument("--lines", type=int, default=2000, help="lines per variant and round")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    run(args.baseline, args.lines, args.rounds)


if __name__ == "__main__":
    main()
