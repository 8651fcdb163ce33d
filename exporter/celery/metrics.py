"""`celery_*` metric objects, kept in prometheus-client's multiprocess files.

With the prefork pool, tasks run in child processes and the main process receives them: each
process writes its own samples to `PROMETHEUS_MULTIPROC_DIR`, and the main process's `/metrics`
adds them up (see docs/celery.md).

A task's numbers are first gathered in process memory and a background thread writes them to the
files every `FLUSH_SECONDS` (and when the process stops): a file write per number per task cost
more than the rest of the instrumentation did.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from exporter.worker import PeriodicWorker

log = logging.getLogger("exporter.celery")

OTHER = "other"
STATES = ("received", "started", "succeeded", "failed", "retried", "rejected", "revoked")
# Tasks range from milliseconds (cache refreshes) to minutes (reports, exports).
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0,
)
FLUSH_SECONDS = 0.5
_MAX_KEYS = 10_000  # cached label lookups: raw names come from clients


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
        self._bounds = (*DURATION_BUCKETS, float("inf"))
        self._keys: dict[tuple[str | None, str | None], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._flush_lock = threading.Lock()  # one flush at a time, and none across a fork
        self._children: dict[tuple[Any, ...], Any] = {}
        self._flusher: _Flusher | None = None
        if hasattr(os, "register_at_fork"):
            # Through a weak reference, and the lock looked up at each fork: a pool process
            # replaces its copy (held during the fork) and may fork again.
            ref = weakref.ref(self)
            os.register_at_fork(before=lambda: _call(ref, "_before_fork"),
                                after_in_parent=lambda: _call(ref, "_after_fork_in_parent"),
                                after_in_child=lambda: _call(ref, "_after_fork"))

    def labels(self, task: str | None, queue: str | None) -> tuple[str, str]:
        """The bounded (task, queue) label values."""
        labels = self._keys.get((task, queue))
        if labels is None:
            labels = self.task_names.value(task), self.queue_names.value(queue or "unknown")
            if len(self._keys) < _MAX_KEYS:
                self._keys[(task, queue)] = labels
        return labels

    def count(self, task: str | None, queue: str | None, state: str) -> None:
        """Add one task of `task` on `queue` in `state`."""
        self.add(self.labels(task, queue), state)

    def add(self, labels: tuple[str, str], state: str) -> None:
        """Add one task in `state` to the bounded `labels`."""
        with self._lock:
            pending = self._pending.get(labels) or self._pending_of(labels)
            pending.states[state] = pending.states.get(state, 0) + 1

    def started(self, labels: tuple[str, str]) -> None:
        """A task of `labels` starts running in this process."""
        with self._lock:
            pending = self._pending.get(labels) or self._pending_of(labels)
            pending.states["started"] = pending.states.get("started", 0) + 1
            pending.running += 1

    def finished(self, labels: tuple[str, str], seconds: float, succeeded: bool) -> None:
        """A task of `labels` that `started()` here ran for `seconds`."""
        index = bisect_left(self._bounds, seconds)
        with self._lock:
            pending = self._pending.get(labels) or self._pending_of(labels)
            if succeeded:
                pending.states["succeeded"] = pending.states.get("succeeded", 0) + 1
            pending.running -= 1
            pending.buckets[index] += 1
            pending.sum += seconds

    def _pending_of(self, labels: tuple[str, str]) -> _Pending:
        pending = self._pending[labels] = _Pending(len(self._bounds))
        return pending

    # --- writing to the files ---

    def flush(self) -> None:
        """Write what was gathered since the last flush to the multiprocess files."""
        with self._flush_lock:
            with self._lock:
                gathered, self._pending = self._pending, {}
            for labels, pending in gathered.items():
                for state, count in pending.states.items():
                    self._child(self.tasks, (*labels, state)).inc(count)
                if pending.running:
                    self._child(self.in_progress, labels).inc(pending.running)
                if any(pending.buckets):
                    _add_observations(self._child(self.duration, labels), pending)

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def start_flushing(self) -> None:
        """Flush every `FLUSH_SECONDS` from a background thread of this process (in a forked
        pool process, a thread of its own: the worker contract's)."""
        if self._flusher is None:
            self._flusher = _Flusher(self)
        self._flusher.start()

    def stop_flushing(self, timeout: float = 5.0) -> None:
        """Stop the thread and write what is left (idempotent)."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.stop(timeout)
        self.flush()

    def _before_fork(self) -> None:
        self._held = self._flush_lock
        self._held.acquire()

    def _after_fork_in_parent(self) -> None:
        self._held.release()

    def _after_fork(self) -> None:
        # A pool child: its parent's gathered numbers are the parent's to write, and a lock
        # held by the parent's flusher thread would stay held. (The flusher knows by itself
        # that its thread did not survive the fork.)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending = {}


class _Flusher(PeriodicWorker):
    """Writes the gathered numbers every `FLUSH_SECONDS` (`exporter-celery-metrics`)."""

    def __init__(self, metrics: CeleryMetrics) -> None:
        # A full disk must not end the thread: the numbers wait for the next flush, and a
        # failure that repeats is logged once a minute, not twice a second.
        super().__init__("celery-metrics", FLUSH_SECONDS, log=log, first_at_once=False,
                         failure="celery metrics flush failed; the numbers wait", quiet=60.0)
        self._metrics = metrics

    def run_once(self) -> None:
        self._metrics.flush()


def _call(ref: weakref.ref[CeleryMetrics], method: str) -> None:
    metrics = ref()
    if metrics is not None:
        getattr(metrics, method)()


class _Pending:
    """One (task, queue)'s numbers since the last flush."""

    __slots__ = ("buckets", "running", "states", "sum")

    def __init__(self, buckets: int) -> None:
        self.states: dict[str, int] = {}
        self.running = 0
        self.buckets = [0] * buckets
        self.sum = 0.0


def _add_observations(histogram: Any, pending: _Pending) -> None:
    """Add a batch of observations to a histogram child, bucket by bucket.

    prometheus-client has no public call for this; its histograms have kept `_buckets` (the
    per-bucket values the files store, not cumulative) and `_sum` since 0.4. A release without
    them fails here, loudly and in the tests, rather than miscounting.
    """
    buckets, total = histogram._buckets, histogram._sum
    if len(buckets) != len(pending.buckets):
        raise RuntimeError(f"histogram has {len(buckets)} buckets, expected {len(pending.buckets)}")
    for value, count in zip(buckets, pending.buckets, strict=True):
        if count:
            value.inc(count)
    total.inc(pending.sum)
