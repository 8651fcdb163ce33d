"""`celery_*` metric objects, kept in prometheus-client's multiprocess files.

With the prefork pool, tasks run in child processes and the main process receives them: each
process writes its own samples to `PROMETHEUS_MULTIPROC_DIR`, and the main process's `/metrics`
adds them up (see docs/celery.md).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"
STATES = ("received", "started", "succeeded", "failed", "retried", "rejected", "revoked")
# Tasks range from milliseconds (cache refreshes) to minutes (reports, exports).
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0,
)


class BoundedLabel:
    """Label values admitted first-come up to `cap`; later values share `other`.

    The worker seeds it with the app's registered task names before the pool forks, so every
    child agrees on the same set; names it has never seen (unregistered, rejected) fall to
    `other` once the cap is reached.
    """

    def __init__(self, cap: int, seed: Iterable[str] = ()) -> None:
        self.cap = cap
        self._admitted: set[str] = set()
        self._lock = threading.Lock()
        for value in seed:
            self.value(value)

    def value(self, raw: str | None) -> str:
        """`raw` when admitted (now or before), else `other`; None reads `unknown`."""
        if raw is None:
            return "unknown"
        if raw in self._admitted:
            return raw
        with self._lock:
            if len(self._admitted) < self.cap:
                self._admitted.add(raw)
                return raw
        return OTHER


def enable_multiprocess() -> str:
    """The multiprocess directory, created (and exported to children) when unset.

    prometheus-client chooses file-backed values from the environment when it is imported; the
    worker decides later, so the value class is chosen again here, before any `celery_*` metric
    exists. Metrics created earlier in this process stay in memory and are not served.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        directory = tempfile.mkdtemp(prefix="exporter-celery-metrics-")
        os.environ[MULTIPROC_ENV] = directory
    os.makedirs(directory, exist_ok=True)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


class CeleryMetrics:
    """The worker's metric objects; registered on `registry` (not served: the files are)."""

    def __init__(
        self, registry: CollectorRegistry, max_task_names: int, task_names: Iterable[str] = ()
    ) -> None:
        labels = ("task", "queue")
        self.tasks = Counter(
            "celery_tasks", "Celery tasks by state: received, started, succeeded, failed, "
            "retried, rejected, revoked.", (*labels, "state"), registry=registry,
        )
        self.duration = Histogram(
            "celery_task_duration_seconds",
            "Time a task ran in the worker (task_prerun to task_postrun).", labels,
            buckets=DURATION_BUCKETS, registry=registry,
        )
        self.in_progress = Gauge(
            "celery_tasks_in_progress", "Tasks running right now.", labels,
            multiprocess_mode="livesum", registry=registry,
        )
        self.workers = Gauge(
            "celery_workers", "Celery workers alive (1 per worker from ready to shutdown).",
            multiprocess_mode="livesum", registry=registry,
        )
        self.task_names = BoundedLabel(max_task_names, task_names)
        # Queue names come from the broker's routing keys: bounded the same way.
        self.queue_names = BoundedLabel(max(50, max_task_names // 4))
        self._children: dict[tuple[str, str, str], Any] = {}

    def labels(self, task: str | None, queue: str | None) -> tuple[str, str]:
        """The bounded (task, queue) label values."""
        return self.task_names.value(task), self.queue_names.value(queue or "unknown")

    def count(self, task: str | None, queue: str | None, state: str) -> None:
        """Add one task of `task` on `queue` in `state`."""
        key = (*self.labels(task, queue), state)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.tasks.labels(*key)
        child.inc()
