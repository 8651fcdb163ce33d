"""Request latency with Sentry off versus a DSN that points at a server that never answers.

Three uvicorn servers (one worker each, pinned to CPU 0) run side by side; wrk (pinned to
CPU 1) measures them in alternation, round after round, on two routes:
  /ok     a normal route
  /flaky  raises an unhandled exception on 20 % of requests (captured: store, metric, Sentry)
Variants:
  capture-off  instrument(app) only: no error capture, no Sentry
  sentry-off   instrument(app) + enable_error_capture(app): store and metric, no DSN
  sentry-off-2 the same again, a second server: the A/A control that shows the noise floor
  sentry-hang  the same, with EXPORTER_SENTRY_DSN at a local TCP server that accepts and never
               answers
The goal: sentry-hang within 5 % of sentry-off. Run: .venv/bin/python bench/sentry_overhead.py
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port

ERROR_SHARE = 0.2
VARIANTS = ("capture-off", "sentry-off", "sentry-off-2", "sentry-hang")
ROUTES = ("/ok", "/flaky")


def serve(port: int, variant: str, data_dir: str, dsn: str | None) -> None:
    """The server side: a small app on uvicorn, configured as `variant`."""
    import uvicorn
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry

    from exporter import enable_error_capture, instrument, load_settings

    settings = load_settings(data_dir=Path(data_dir), sentry_dsn=dsn, environment="bench")
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/flaky")
    async def flaky() -> dict[str, bool]:
        if random.random() < ERROR_SHARE:
            raise RuntimeError(f"flaky failure #{random.randint(1, 10**6)}")
        return {"ok": True}

    instrument(app, settings, CollectorRegistry())
    if variant != "capture-off":
        enable_error_capture(app, settings)
    # Uvicorn's own traceback log for each failure is the same cost in every variant.
    level = os.environ.get("BENCH_LOG_LEVEL", "critical")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level=level, access_log=False)


class BlackHole:
    """Accepts TCP connections and never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


def wait_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(port: int, route: str, seconds: int, connections: int) -> dict[str, float]:
    """req/s, mean, p50 and p99 latency (ms) of one wrk run."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s",
         "--latency", f"http://127.0.0.1:{port}{route}"],
        capture_output=True, text=True, check=True,
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, float]:
    """req/s, mean, p50 and p99 latency (ms) from wrk's --latency output."""
    mean = re.search(r"Latency\s+([\d.]+\w+)", out)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert mean and p50 and p99 and rps, out
    return {"rps": float(rps.group(1)), "mean": _ms(mean.group(1)), "p50": _ms(p50.group(1)),
            "p99": _ms(p99.group(1))}


def _stored_events(data_dir: Path) -> int:
    path = data_dir / "errors.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT coalesce(sum(count), 0) FROM error_groups").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=2, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=8, help="alternations per route")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--serve", nargs=4, metavar=("PORT", "VARIANT", "DATA_DIR", "DSN"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, variant, data_dir, dsn = args.serve
        serve(int(port), variant, data_dir, dsn if dsn != "-" else None)
        return 0
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("needs wrk and taskset (apt-get install -y wrk util-linux)", file=sys.stderr)
        return 2

    hole = BlackHole()
    work = Path(tempfile.mkdtemp(prefix="sentry-bench-"))
    servers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTER_")}
    try:
        for variant in VARIANTS:
            port = free_port()
            dsn = f"http://public@127.0.0.1:{hole.port}/1" if variant == "sentry-hang" else "-"
            process = subprocess.Popen(
                ["taskset", "-c", "0", sys.executable, __file__, "--serve", str(port), variant,
                 str(work / variant), dsn],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            )
            servers[variant] = (port, process)
        for port, _ in servers.values():
            wait_up(port)
        for port, _ in servers.values():  # warm-up: imports, route caches, first connections
            for route in ROUTES:
                wrk(port, route, 1, args.connections)

        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for round_index in range(args.rounds):
            for route in ROUTES:
                order = VARIANTS if round_index % 2 == 0 else tuple(reversed(VARIANTS))
                for variant in order:
                    figures = wrk(servers[variant][0], route, args.seconds, args.connections)
                    results.setdefault((route, variant), []).append(figures)
        _print_table(results, args)
        print()
        for variant in VARIANTS:
            print(f"events in the error store of {variant}: {_stored_events(work / variant)}")
        print(f"connections the never-answering Sentry accepted: {len(hole.held)}")
    finally:
        for _, process in servers.values():
            process.terminate()
        for _, process in servers.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _print_table(results: dict[tuple[str, str], list[dict[str, float]]],
                 args: argparse.Namespace) -> None:
    print(f"wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} alternating rounds; "
          f"/flaky fails {ERROR_SHARE:.0%} of requests")
    print("figures: median over rounds; ratios: median of the per-round ratios to sentry-off "
          "(each round measures the variants back to back)")
    header = (f"{'route':<7} {'variant':<12} {'req/s':>7} {'mean ms':>8} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'req/s ratio':>12} {'mean ratio':>11} {'p50 ratio':>10} "
              f"{'p99 ratio':>10}")
    print(header)
    print("-" * len(header))
    for route in ROUTES:
        base = results[(route, "sentry-off")]
        for variant in VARIANTS:
            runs = results[(route, variant)]
            med = {key: statistics.median(r[key] for r in runs)
                   for key in ("rps", "mean", "p50", "p99")}
            ratio = {key: statistics.median(r[key] / b[key] for r, b in zip(runs, base,
                                                                            strict=True))
                     for key in ("rps", "mean", "p50", "p99")}
            print(f"{route:<7} {variant:<12} {med['rps']:>7.0f} {med['mean']:>8.2f} "
                  f"{med['p50']:>7.2f} {med['p99']:>7.2f} {ratio['rps']:>12.3f} "
                  f"{ratio['mean']:>11.3f} {ratio['p50']:>10.3f} {ratio['p99']:>10.3f}")


if __name__ == "__main__":
    sys.exit(main())
