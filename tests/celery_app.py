"""The Celery app the worker tests (and bench/celery_throughput.py) run in a real worker.

Broker and queue come from the environment, so each test uses its own queue:
`CELERY_TEST_BROKER` (default Redis db 5), `CELERY_TEST_QUEUE`, and `CELERY_TEST_INSTRUMENT=0`
for an uninstrumented worker (the bench's baseline).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import Celery
from kombu import Queue

from exporter import capture_exception
from exporter.celery import instrument_celery

BROKER = os.environ.get("CELERY_TEST_BROKER", "redis://127.0.0.1:6379/5")
QUEUE = os.environ.get("CELERY_TEST_QUEUE", "exporter-tests")



def make_app(broker: str, queue: str, name: str = "exporter_tests") -> Celery:
    """A Celery app whose one queue is `queue` on `broker` (workers and senders alike)."""
    celery_app = Celery(name, broker=broker)
    celery_app.conf.update(
        task_default_queue=queue,
        task_queues=[Queue(queue, routing_key=queue)],
        task_ignore_result=True,
        worker_prefetch_multiplier=4,
        broker_connection_retry_on_startup=True,
    )
    return celery_app


app = make_app(BROKER, QUEUE)
log = logging.getLogger("tests.celery_app")

if os.environ.get("CELERY_TEST_INSTRUMENT", "1") == "1":
    instrument_celery(app)


@app.task(name="tests.ok")
def ok(n: int) -> int:
    log.info("working on item %d", n)
    return n


@app.task(name="tests.boom")
def boom(n: int, password: str = "", note: str = "") -> None:
    log.info("about to fail on item %d", n)
    raise ValueError(f"cannot process item (note={note})")


@app.task(name="tests.flaky", bind=True, max_retries=3)
def flaky(self: Any, n: int) -> int:
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return n


@app.task(name="tests.handled")
def handled(key: str) -> None:
    try:
        {}[key]
    except KeyError:
        log.exception("lookup of %s failed, carrying on", key)


@app.task(name="tests.noop")
def noop() -> None:
    return None


@app.task(name="tests.busy")
def busy(pid_file: str, seconds: float) -> None:
    """Runs `seconds`, after writing its pool process's pid to `pid_file` (a test kills it)."""
    with open(pid_file, "w") as out:
        out.write(str(os.getpid()))
    time.sleep(seconds)


@app.task(name="tests.reports")
def reports(key: str) -> None:
    try:
        {}[key]
    except KeyError as exc:
        capture_exception(exc, key=key)
