"""The error path: what a raising request costs with error capture on, and how long a burst of
distinct exceptions holds the event loop.

Three uvicorn servers (one worker each, pinned to CPU 0) of one small app whose
`/raise/{n}` raises an exception of its own class for each n (1,000 classes: 1,000 error groups):
  capture-off    instrument(app) only
  capture-on     instrument(app) + enable_error_capture(app): metric and SQLite store (no Sentry)
  capture-on-2   the same again, a second server: the A/A control that shows the noise floor
Each server also runs a loop-lag probe: a task that sleeps 1 ms at a time and records how late
it wakes up (the longest time the loop could not run it), read and reset at `/lag`.

1. Cost: wrk (CPU 1) on `/raise/{random 1..1000}` (every request raises; the first pass over
   the ids creates the groups, later ones update them), servers alternating round by round;
   ratios to capture-off.
2. Burst: per round, fresh servers; 1,000 requests, one per class, 32 at a time, as fast as the
   server takes them; then 2 s for the store's writer to finish; the probe's longest lag over the
   burst and the drain, and the groups in the store.
The goals: capture-on costs at most 1.5x capture-off (mean and p99), and the burst never holds
the loop more than 10 ms beyond what capture-off shows. Run: .venv/bin/python bench/error_path.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentry_overhead import parse_wrk, wait_up

from tests.conftest import free_port

VARIANTS = ("capture-off", "capture-on", "capture-on-2")
CLASSES = 1000
LAG_TICK = 0.001
WRK_SCRIPT = f"""
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/raise/" .. math.random(1, {CLASSES}))
end
"""


def serve(port: int, variant: str, data_dir: str) -> None:
    """The server side: the app on uvicorn, configured as `variant`, with the lag probe."""
    import uvicorn
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry

    from exporter import enable_error_capture, instrument, load_settings

    errors = [type(f"Failure{n}", (Exception,), {}) for n in range(CLASSES + 1)]
    lag = {"max": 0.0, "late": []}

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_TICK)
            late = loop.time() - before - LAG_TICK
            lag["max"] = max(lag["max"], late)
            lag["late"].append(late)

    settings = load_settings(data_dir=Path(data_dir), environment="bench")
    app = FastAPI(on_startup=[lambda: asyncio.get_running_loop().create_task(probe())])

    @app.get("/raise/{n}")
    async def fail(n: int) -> None:
        raise errors[n % len(errors)](f"request {n} failed")

    @app.get("/lag")
    async def read_lag() -> dict[str, float]:
        late = sorted(lag["late"])  # type: ignore[arg-type]
        answer = {"max_ms": lag["max"] * 1e3,
                  "p99_ms": late[int(len(late) * 0.99)] * 1e3 if late else 0.0}
        lag["max"], lag["late"] = 0.0, []
        return answer

    instrument(app, settings, CollectorRegistry())
    if variant != "capture-off":
        enable_error_capture(app, settings)
    level = os.environ.get("BENCH_LOG_LEVEL", "critical")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level=level, access_log=False)


def start(variant: str, work: Path) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTER_")}
    process = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, __file__, "--serve", str(port), variant,
         str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return port, process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def wrk(port: int, seconds: int, connections: int, script: Path) -> dict[str, float]:
    """req/s, mean and p99 latency (ms) of one wrk run on /raise/{random}."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s",
         "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


async def burst(port: int) -> tuple[float, int]:
    """1,000 requests, one per exception class, 32 at a time; seconds taken, and how many got
    no answer (a connection the server closed: a loaded machine's backlog)."""
    import httpx

    unanswered = 0
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        queue = list(range(1, CLASSES + 1))

        async def one_by_one() -> None:
            nonlocal unanswered
            while queue:
                try:
                    answer = await client.get(f"/raise/{queue.pop()}")
                except httpx.TransportError:
                    unanswered += 1
                    continue
                assert answer.status_code == 500, answer.status_code

        await asyncio.gather(*(one_by_one() for _ in range(32)))
    return time.perf_counter() - began, unanswered


def lag_of(port: int) -> dict[str, float]:
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}/lag", timeout=10).json()  # type: ignore[no-any-return]


def groups_in(data_dir: Path) -> int:
    path = data_dir / "errors.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM error_groups").fetchone()[0])


def measure_cost(args: argparse.Namespace, work: Path) -> dict[str, list[dict[str, float]]]:
    script = work / "raise.lua"
    script.write_text(WRK_SCRIPT)
    servers = {v: start(v, work / f"cost-{v}") for v in VARIANTS}
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    try:
        for port, _ in servers.values():
            wait_up(port)
            wrk(port, 2, args.connections, script)  # warm-up: the groups exist from here on
        for round_no in range(args.rounds):
            order = VARIANTS[round_no % 3:] + VARIANTS[:round_no % 3]
            for variant in order:
                results[variant].append(
                    wrk(servers[variant][0], args.seconds, args.connections, script))
    finally:
        for _, process in servers.values():
            stop(process)
    return results


def measure_burst(args: argparse.Namespace, work: Path) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for round_no in range(args.bursts):
        order = VARIANTS[round_no % 3:] + VARIANTS[:round_no % 3]
        for variant in order:
            data = work / f"burst-{round_no}-{variant}"
            port, process = start(variant, data)
            try:
                wait_up(port)
                time.sleep(0.5)
                lag_of(port)  # reset: start-up is not the burst
                seconds, unanswered = asyncio.run(burst(port))
                time.sleep(2.0)  # the store's writer drains
                lag = lag_of(port)
            finally:
                stop(process)
            results[variant].append({**lag, "seconds": seconds, "groups": groups_in(data),
                                     "unanswered": unanswered})
    return results


def print_cost(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    print(f"1. cost: wrk -t1 -c{args.connections} -d{args.seconds}s on /raise/{{1..{CLASSES}}} "
          f"(every request raises), {args.rounds} rotating rounds; figures: medians; ratios: "
          "median of per-round ratios to capture-off")
    print()
    print("| variant | req/s | mean ms | p99 ms | cost ratio (1/req/s) | mean ratio | p99 ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = results["capture-off"]
    for variant in VARIANTS:
        runs = results[variant]
        med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "mean", "p99")}
        ratio = {k: statistics.median(r[k] / b[k] for r, b in zip(runs, base, strict=True))
                 for k in ("rps", "mean", "p99")}
        print(f"| {variant} | {med['rps']:.0f} | {med['mean']:.2f} | {med['p99']:.2f} | "
              f"{1 / ratio['rps']:.3f} | {ratio['mean']:.3f} | {ratio['p99']:.3f} |")


def print_burst(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    print()
    print(f"2. burst: {CLASSES} distinct exceptions, 32 at a time, {args.bursts} rounds of fresh "
          f"servers; loop lag = how late a {LAG_TICK * 1e3:.0f} ms sleep woke (burst + 2 s "
          "drain); figures: median over rounds (worst round)")
    print()
    print("| variant | burst s | longest lag ms | p99 lag ms | groups stored | unanswered |")
    print("| --- | --- | --- | --- | --- | --- |")
    for variant in VARIANTS:
        runs = results[variant]
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("seconds", "max_ms", "p99_ms", "groups", "unanswered")}
        worst = max(r["max_ms"] for r in runs)
        print(f"| {variant} | {med['seconds']:.2f} | {med['max_ms']:.1f} ({worst:.1f}) | "
              f"{med['p99_ms']:.2f} | {med['groups']:.0f} | {med['unanswered']:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="rotating rounds of the cost part")
    parser.add_argument("--bursts", type=int, default=3, help="rounds of the burst part")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "VARIANT", "DATA_DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, variant, data_dir = args.serve
        serve(int(port), variant, data_dir)
        return 0
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("needs wrk and taskset (apt-get install -y wrk util-linux)", file=sys.stderr)
        return 2
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})  # the burst's client, like wrk, off the servers' CPU 0
    work = Path(tempfile.mkdtemp(prefix="error-path-bench-"))
    try:
        print_cost(measure_cost(args, work), args)
        print_burst(measure_burst(args, work), args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
