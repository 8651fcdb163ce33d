"""Celery task throughput with and without `instrument_celery`, side by side.

Each round starts a fresh worker per variant (same broker, prefork, same concurrency, same
--loglevel, pinned to the same cores), waits until it answers a ping, then publishes N no-op
tasks and stops the clock when the worker's own counter (`inspect().stats()['total']`) reaches N.
Variants alternate within each round; the ratio is the median of per-round ratios.

    .venv/bin/python bench/celery_throughput.py --tasks 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.celery_app import make_app  # noqa: E402
from tests.conftest import free_port  # noqa: E402

VARIANTS = ("bare", "instrumented")


def start_worker(variant: str, broker: str, queue: str, args: argparse.Namespace,
                 tmp: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CELERY_TEST_BROKER": broker, "CELERY_TEST_QUEUE": queue,
           "CELERY_TEST_INSTRUMENT": "1" if variant == "instrumented" else "0",
           "EXPORTER_LOG_DIR": str(tmp / "logs"), "EXPORTER_DATA_DIR": str(tmp / "data"),
           "EXPORTER_CELERY_METRICS_PORT": str(free_port())}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
               "--pool=prefork", f"--concurrency={args.concurrency}", "-Q", queue,
               f"--loglevel={args.loglevel}", "-n", f"{queue}@%h", "--without-gossip",
               "--without-mingle", "--without-heartbeat"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", args.worker_cores, *command]
    out = (tmp / f"{variant}.out").open("wb")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def completed(app: object, node: str) -> int:
    stats = app.control.inspect([node], timeout=1.0).stats() or {}  # type: ignore[attr-defined]
    return int(stats.get(node, {}).get("total", {}).get("tests.noop", 0))


def wait_ready(app: object, node: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}")
        if app.control.ping([node], timeout=0.5):  # type: ignore[attr-defined]
            return
    raise TimeoutError("worker did not answer a ping within 30 s")


def run_once(variant: str, args: argparse.Namespace, tmp: Path) -> float:
    queue = f"bench-{variant}-{uuid.uuid4().hex[:8]}"
    app = make_app(args.broker, queue, name="bench")
    node = f"{queue}@{os.uname().nodename}"
    process = start_worker(variant, args.broker, queue, args, tmp)
    try:
        wait_ready(app, node, process)
        start = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for _ in range(args.tasks):
                app.send_task("tests.noop", queue=queue, producer=producer)
        while completed(app, node) < args.tasks:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}")
            time.sleep(0.05)
        return args.tasks / (time.perf_counter() - start)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        cleanup(args.broker, queue)


def cleanup(broker: str, queue: str) -> None:
    if broker.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker)
        client.delete(queue, f"_kombu.binding.{queue}")
        client.close()
    else:
        from kombu import Connection

        with Connection(broker) as connection:
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--worker-cores", default="0", help="taskset list for the worker")
    args = parser.parse_args()
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1} if os.cpu_count() and os.cpu_count() > 1 else {0})
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="celery-bench-") as tmp:
        for round_no in range(args.rounds):
            order = VARIANTS if round_no % 2 == 0 else VARIANTS[::-1]
            got = {v: run_once(v, args, Path(tmp)) for v in order}
            for variant, rate in got.items():
                rates[variant].append(rate)
            ratios.append(got["instrumented"] / got["bare"])
            print(f"round {round_no + 1}: " + ", ".join(
                f"{v} {r:,.0f} tasks/s" for v, r in got.items()), file=sys.stderr)
    print(f"\n{args.tasks} no-op tasks per run, {args.rounds} rounds, broker "
          f"{args.broker.split('://')[0]}, prefork --concurrency={args.concurrency}, "
          f"--loglevel={args.loglevel}, worker on cores {args.worker_cores}\n")
    print("| variant | median tasks/s | min | max | ratio to bare (median of rounds) |")
    print("| --- | --- | --- | --- | --- |")
    for variant in VARIANTS:
        ratio = "1.00" if variant == "bare" else f"{statistics.median(ratios):.3f}"
        values = rates[variant]
        print(f"| {variant} | {statistics.median(values):,.0f} | {min(values):,.0f} | "
              f"{max(values):,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
