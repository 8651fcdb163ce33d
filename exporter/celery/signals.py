"""Task signal handlers: `celery_*` metrics, the task's trace and log fields, its failures.

`task_received`, `task_rejected`, `task_unknown` and `task_revoked` fire in the main worker
process; `task_prerun`, `task_postrun` (which counts successes), `task_failure` and `task_retry`
in the pool process that runs the task. A prefork pool process replaces the first two with a
wrapper around each task's tracer (`wrap_tracers`): the same work, without two dispatches.
Each handler runs inside a guard: instrumentation never fails a task nor the worker.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from exporter.celery.context import TaskScope, enter_task, leave_task
from exporter.celery.errors import TaskErrors
from exporter.celery.metrics import OTHER, CeleryMetrics

log = logging.getLogger("exporter.celery")
F = TypeVar("F", bound=Callable[..., None])


def warn_once(warned: set[str], handler: str, exc: Exception) -> None:
    """Log that `handler` raised `exc`, unless it is already in `warned`."""
    if handler not in warned:
        warned.add(handler)
        log.warning("celery instrumentation: %s failed: %r", handler, exc)


def guarded(handler: F) -> F:
    """`handler`, with any exception it raises logged (once per handler) and swallowed."""
    warned: set[str] = set()

    @functools.wraps(handler)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            handler(*args, **kwargs)
        except Exception as exc:
            warn_once(warned, handler.__name__, exc)

    return run  # type: ignore[return-value]


def queue_of(request: Any) -> str | None:
    """The queue a task came from: the routing key of its delivery (None when unknown).
    `request` is a request object, or the request dict a worker hands to a task's tracer."""
    info = (request.get("delivery_info") if isinstance(request, dict)
            else getattr(request, "delivery_info", None))
    if isinstance(info, dict):
        key = info.get("routing_key") or info.get("exchange")
        return str(key) if key else None
    return None


def name_of(task: Any, request: Any = None) -> str | None:
    """A task's registered name, from the task object or its request."""
    for source, attr in ((task, "name"), (request, "task"), (request, "name")):
        value = getattr(source, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


_WRAPPED = "_exporter_traced"


class _Run:
    """One task being run in this process."""

    __slots__ = ("labels", "scope", "started")

    def __init__(self, labels: tuple[str, str], scope: TaskScope, started: float) -> None:
        self.labels = labels
        self.scope = scope
        self.started = started


class TaskSignals:
    """The handlers, bound to one worker's metrics and error capture."""

    def __init__(self, metrics: CeleryMetrics, errors: TaskErrors | None) -> None:
        self.metrics = metrics
        self.errors = errors
        self._runs: dict[str, _Run] = {}
        self._warned: set[str] = set()

    def _failed(self, handler: str, exc: Exception) -> None:
        """What `guarded` does when a handler raises: log it, once per handler."""
        warn_once(self._warned, handler, exc)

    # --- main process ---

    # The three handlers every task goes through guard themselves (one call less than
    # `guarded`): in a worker, each Python call between two tasks costs several times what it
    # costs in a loop, its code and data having left the CPU's caches meanwhile.
    def on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        try:
            name = getattr(request, "name", None)  # a worker Request: `.task` is the Task object
            if not isinstance(name, str):
                name = name_of(None, request)
            self.metrics.add(self.metrics.labels(name, queue_of(request)), "received")
        except Exception as exc:
            self._failed("on_received", exc)

    @guarded
    def on_rejected(self, sender: Any = None, message: Any = None, **_: Any) -> None:
        headers = getattr(message, "headers", None) or {}
        name = headers.get("task") if isinstance(headers, dict) else None
        self.metrics.count(name if isinstance(name, str) else None, queue_of(message), "rejected")

    @guarded
    def on_unknown(self, sender: Any = None, message: Any = None, **_: Any) -> None:
        # The name was sent by a client and is not registered here: it gets no series of its own.
        self.metrics.count(OTHER, queue_of(message), "rejected")

    @guarded
    def on_revoked(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        self.metrics.count(name_of(sender, request), queue_of(request), "revoked")

    # --- pool process ---

    def on_prerun(self, sender: Any = None, task_id: str | None = None, task: Any = None,
                  **_: Any) -> None:
        try:
            task = task if task is not None else sender
            request = task.request
            run = self._start(name_of(task, request), task_id, request)
            if run is not None and task_id is not None:
                self._runs[task_id] = run
        except Exception as exc:
            self._failed("on_prerun", exc)

    def on_postrun(self, sender: Any = None, task_id: str | None = None,
                   state: str | None = None, **_: Any) -> None:
        # Success is counted here rather than on `task_success`: one signal less.
        run = self._runs.pop(task_id, None) if task_id is not None else None
        self._finish(run, state == "SUCCESS")

    # --- pool process, without the two signals (prefork) ---

    def wrap_tracers(self, tasks: Mapping[str, Any]) -> bool:
        """Run each task's Celery tracer (`task.__trace__`, which a prefork pool process builds
        for every task before `worker_process_init`) between our own start and finish, so that
        `task_prerun` and `task_postrun` need no receiver of ours: Celery's dispatch of each
        cost about as much as the handler did. Wraps all or nothing; False (nothing wrapped)
        when a task has no tracer yet, and the signal handlers keep doing the work."""
        tracers = {name: getattr(task, "__trace__", None) for name, task in tasks.items()}
        if not tracers or not all(callable(tracer) for tracer in tracers.values()):
            return False
        for name, task in tasks.items():
            tracer = tracers[name]
            if tracer is not None and not getattr(tracer, _WRAPPED, False):
                task.__trace__ = self._traced(name_of(task), tracer)
        return True

    def _traced(self, name: str | None, tracer: Callable[..., Any]) -> Callable[..., Any]:
        start, finish = self._start, self._finish

        def traced(uuid: str, args: Any, kwargs: Any, request: Any = None,
                   *more: Any, **options: Any) -> Any:
            run = start(name, uuid, request)
            try:
                result = tracer(uuid, args, kwargs, request, *more, **options)
            except BaseException:
                finish(run, False)
                raise
            # Celery's tracer returns (retval, info, runtime, retval repr): no info on success.
            finish(run, isinstance(result, tuple) and len(result) > 1 and result[1] is None)
            return result

        setattr(traced, _WRAPPED, True)
        return traced

    def _start(self, name: str | None, task_id: str | None, request: Any) -> _Run | None:
        """A task starts here: its trace and log fields set, counted as started."""
        try:
            queue = queue_of(request)
            labels = self.metrics.labels(name, queue)
            scope = enter_task(request, name, queue, task_id, labels[0])
            run = _Run(labels, scope, time.perf_counter())
            self.metrics.started(labels)
            return run
        except Exception as exc:
            self._failed("task start", exc)
            return None

    def _finish(self, run: _Run | None, succeeded: bool) -> None:
        """A task `_start` saw has ended: its duration and outcome counted, its context undone."""
        if run is None:
            return
        try:
            try:
                self.metrics.finished(run.labels, time.perf_counter() - run.started, succeeded)
            finally:
                leave_task(run.scope)
        except Exception as exc:
            self._failed("task finish", exc)

    @guarded
    def on_failure(self, sender: Any = None, task_id: str | None = None,
                   exception: BaseException | None = None, args: Any = None,
                   kwargs: Any = None, **_: Any) -> None:
        request = getattr(sender, "request", None)
        name, queue = name_of(sender, request), queue_of(request)
        self.metrics.count(name, queue, "failed")
        if self.errors is not None and exception is not None:
            self.errors.task_failed(exception, self.metrics.task_names.value(name), task_id,
                                    queue, args, kwargs)

    @guarded
    def on_retry(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        self.metrics.count(name_of(sender, request), queue_of(request), "retried")
