"""Celery task throughput with and without `instrument_celery`, side by side.

Each round starts a fresh worker per variant (same broker, prefork, same concurrency, same
--loglevel, pinned to the same cores), waits until it answers a ping, runs a warm-up batch,
then publishes N no-op tasks and stops the clock when the worker's own counter
(`inspect().stats()['total']`) has counted them.
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

# variant -> extra environment of its worker
VARIANTS: dict[str, dict[str, str]] = {
    "bare": {"CELERY_TEST_INSTRUMENT": "0"},
    "instrumented": {"CELERY_TEST_INSTRUMENT": "1"},
    # Metrics, trace ids, errors and queue depth, but Celery's own log formatting.
    "instrumented, Celery's logging": {"CELERY_TEST_INSTRUMENT": "1",
                                       "EXPORTER_CELERY_SETUP_LOGGING": "false"},
}


def start_worker(variant: str, broker: str, queue: str, args: argparse.Namespace,
                 tmp: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CELERY_TEST_BROKER": broker, "CELERY_TEST_QUEUE": queue,
           **VARIANTS[variant],
           "EXPORTER_LOG_DIR": str(tmp / "logs"), "EXPORTER_DATA_DIR": str(tmp / "data"),
           "EXPORTER_CELERY_METRICS_PORT": str(free_port())}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
               "--pool=prefork", f"--concurrency={args.concurrency}", "-Q", queue,
               f"--loglevel={args.loglevel}", "-n", f"{queue}@%h", "--without-gossip",
               "--without-mingle", "--without-heartbeat"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", args.worker_cores, *command]
    out = (tmp / f"{queue}.out").open("wb")
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


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the worker and its pool processes."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def run_once(variant: str, args: argparse.Namespace, tmp: Path) -> tuple[float, float]:
    """(tasks per second, worker CPU µs per task) of one fresh worker."""
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    app = make_app(args.broker, queue, name="bench")
    node = f"{queue}@{os.uname().nodename}"
    process = start_worker(variant, args.broker, queue, args, tmp)
    try:
        wait_ready(app, node, process)

        def run(tasks: int, total: int) -> float:
            start = time.perf_counter()
            with app.producer_or_acquire() as producer:
                for _ in range(tasks):
                    app.send_task("tests.noop", queue=queue, producer=producer)
            while completed(app, node) < total:
                if process.poll() is not None:
                    raise RuntimeError(f"worker exited with {process.returncode}")
                time.sleep(0.05)
            return tasks / (time.perf_counter() - start)

        # Warm-up: pool processes finish their start-up (log sinks, error store) on first use.
        run(args.warmup, args.warmup)
        cpu = tree_cpu(process.pid)
        rate = run(args.tasks, args.warmup + args.tasks)
        return rate, (tree_cpu(process.pid) - cpu) / args.tasks * 1e6
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
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()
    else:
        from kombu import Connection

        with Connection(broker) as connection:
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


class _Request:
    def __init__(self) -> None:
        self.id = "3f1c"
        self.task = "tests.noop"
        self.delivery_info = {"routing_key": "bench"}
        self.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class _Task:
    name = "tests.noop"
    request = _Request()


def handler_costs(count: int = 20_000) -> list[tuple[str, float]]:
    """µs per call of the signal handlers one task goes through, in multiprocess mode."""
    from prometheus_client import CollectorRegistry

    from exporter.celery.directory import enable_multiprocess
    from exporter.celery.metrics import CeleryMetrics
    from exporter.celery.signals import TaskSignals

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="celery-bench-metrics-")
    enable_multiprocess()
    signals = TaskSignals(CeleryMetrics(CollectorRegistry(), 200, ["tests.noop"]), None)
    task, request = _Task(), _Request()

    def run() -> None:
        signals.on_prerun(sender=task, task_id="3f1c", task=task)
        signals.on_postrun(sender=task, task_id="3f1c", state="SUCCESS")

    steps = [("task_received (main process)", lambda: signals.on_received(request=request)),
             ("task_prerun + task_postrun (pool process)", run)]
    costs = []
    for label, step in steps:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(count):
                step()
            best = min(best, (time.perf_counter() - start) / count * 1e6)
        costs.append((label, best))
    shutil.rmtree(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"), ignore_errors=True)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200, help="tasks run before the clock")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--worker-cores", default="0", help="taskset list for the worker")
    args = parser.parse_args()
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1} if os.cpu_count() and os.cpu_count() > 1 else {0})
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpus: dict[str, list[float]] = {v: [] for v in VARIANTS}
    ratios: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu_ratios: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="celery-bench-") as tmp:
        for round_no in range(args.rounds):
            names = list(VARIANTS)
            order = names if round_no % 2 == 0 else names[::-1]
            got = {v: run_once(v, args, Path(tmp)) for v in order}
            for variant, (rate, cpu) in got.items():
                rates[variant].append(rate)
                cpus[variant].append(cpu)
            for variant, (rate, cpu) in got.items():
                ratios[variant].append(rate / got["bare"][0])
                cpu_ratios[variant].append(got["bare"][1] / cpu)
            print(f"round {round_no + 1}: " + ", ".join(
                f"{v} {r:,.0f} tasks/s {c:,.0f} µs CPU/task" for v, (r, c) in got.items()),
                file=sys.stderr)
    print(f"\n{args.tasks} no-op tasks per run after {args.warmup} warm-up, "
          f"{args.rounds} rounds, broker "
          f"{args.broker.split('://')[0]}, prefork --concurrency={args.concurrency}, "
          f"--loglevel={args.loglevel}, worker on cores {args.worker_cores}\n")
    print("| variant | median tasks/s | min | max | throughput ratio to bare | "
          "worker CPU µs/task (median) | CPU ratio (bare / variant) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for variant in VARIANTS:
        ratio = f"{statistics.median(ratios[variant]):.3f}"
        cpu_ratio = f"{statistics.median(cpu_ratios[variant]):.3f}"
        values = rates[variant]
        print(f"| {variant} | {statistics.median(values):,.0f} | {min(values):,.0f} | "
              f"{max(values):,.0f} | {ratio} | {statistics.median(cpus[variant]):,.0f} | "
              f"{cpu_ratio} |")
    print("\nRatios are medians of per-round ratios. Worker CPU counts the main and pool "
          "processes (user + system), so it is not skewed by other load on the machine.")
    costs = handler_costs()
    print("\nCost of the instrumentation's signal handlers per task (in-process, best of 3):\n")
    print("| handler | µs per task |")
    print("| --- | --- |")
    for label, micros in costs:
        print(f"| {label} | {micros:.1f} |")
    print(f"| total | {sum(m for _l, m in costs):.1f} |")


if __name__ == "__main__":
    main()
