"""Running the test Celery app (`tests/celery_app.py`) in a real worker, and reading it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.health.probes.queues import CELERY_PRIORITY_SEP

ROOT = Path(__file__).resolve().parent.parent
REDIS = "redis://127.0.0.1:6379/5"
# The `celery` command as a user runs it: a worker restarted by SIGHUP execs `sys.argv`
# again, which `python -m celery` cannot survive (celery/__main__.py's relative import).
CELERY = str(Path(sys.executable).with_name("celery"))

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of the worker's /metrics, by (name, labels)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and wanted <= lbl)


def start_worker(
    tmp: Path, broker_url: str, queue: str, env: dict[str, str], out: str = "worker.out",
    session: bool = False,
) -> subprocess.Popen[bytes]:
    """A prefork worker (2 pool processes) of the test app on `queue`, its output in
    `tmp/<out>`; `env` adds to (or overrides) the environment. Without
    `PROMETHEUS_MULTIPROC_DIR` in `env`, the instrumentation makes its own directory. With
    `session`, the worker leads a process group of its own (to kill it with its pool)."""
    full = {**os.environ, "CELERY_TEST_BROKER": broker_url, "CELERY_TEST_QUEUE": queue}
    full.pop("PROMETHEUS_MULTIPROC_DIR", None)
    full.update(env)
    with (tmp / out).open("ab") as output:
        return subprocess.Popen(
            [CELERY, "-A", "tests.celery_app", "worker",
             "--pool=prefork", "--concurrency=2", "-Q", queue, "--loglevel=INFO",
             "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=full, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=session,
        )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_scrape(process: subprocess.Popen[bytes], port: int, timeout: float = 60) -> Samples:
    """The worker's first answer on /metrics (it serves once the pool is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}")
        try:
            return scrape(port)
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"worker served no /metrics on port {port} within {timeout} s")


def delete_queue(broker: str, url: str, queue: str) -> None:
    """Remove `queue` (and its priority sub-queues, bindings, exchange) from the broker."""
    if broker == "redis":
        import redis

        client = redis.Redis.from_url(url)
        keys = [queue, *(f"{queue}{CELERY_PRIORITY_SEP}{p}" for p in range(10)),
                f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
        client.delete(*keys)
        client.close()
        return
    from kombu import Connection

    with Connection(url) as connection:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(queue)
