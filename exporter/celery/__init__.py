"""Celery workers: task metrics, the trace id across the queue, JSON logs, errors, queue depth.

`instrument_celery(app)` only connects signal handlers: in a web process it adds the trace
headers to the tasks it sends; the worker-side parts start with the worker (`worker_init`).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from exporter.celery.context import inject_trace
from exporter.celery.signals import guarded
from exporter.celery.worker import WorkerInstrumentation
from exporter.config import Settings, load_settings

__all__ = ["CeleryInstrumentation", "instrument_celery"]

_lock = threading.Lock()
# instrument_celery's idempotence, per Celery app: a Celery app, unlike Starlette's, has no
# namespace for an extension's state (app.state), and its `conf` is printed by `inspect conf`.
_instrumented: weakref.WeakKeyDictionary[Any, CeleryInstrumentation] = (
    weakref.WeakKeyDictionary()
)


@guarded
def _on_publish(sender: Any = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        inject_trace(headers)


class CeleryInstrumentation:
    """The signal handlers of one Celery app; `worker` is set once a worker starts."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.worker: WorkerInstrumentation | None = None

    def connect(self) -> None:
        """Connect to Celery's signals (strong references: the handlers live with the app)."""
        from celery import signals

        signals.before_task_publish.connect(_on_publish, weak=False)
        signals.worker_init.connect(self._worker_init, weak=False)
        if self.settings.celery_setup_logging:
            # A receiver of `setup_logging` stops Celery from configuring (hijacking) logging.
            signals.setup_logging.connect(self._setup_logging, weak=False)
        signals.worker_ready.connect(self._worker_ready, weak=False)
        signals.worker_shutdown.connect(self._worker_shutdown, weak=False)
        signals.worker_process_init.connect(self._process_init, weak=False)
        signals.worker_process_shutdown.connect(self._process_shutdown, weak=False)

    def _connect_task_signals(self, worker: WorkerInstrumentation) -> None:
        # Connected once the worker exists: the handlers are the worker's bound methods, with
        # no dispatch in between (they run for every task).
        from celery import signals

        handlers = worker.signals
        for signal, handler in (
            (signals.task_received, handlers.on_received),
            (signals.task_rejected, handlers.on_rejected),
            (signals.task_unknown, handlers.on_unknown),
            (signals.task_revoked, handlers.on_revoked),
            (signals.task_prerun, handlers.on_prerun),
            (signals.task_postrun, handlers.on_postrun),
            (signals.task_failure, handlers.on_failure),
            (signals.task_retry, handlers.on_retry),
        ):
            signal.connect(handler, weak=False)

    @guarded
    def _worker_init(self, sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", self.app) is self.app and self.worker is None:
            self.worker = WorkerInstrumentation(self.app, self.settings)
            self._connect_task_signals(self.worker)

    @guarded
    def _setup_logging(self, loglevel: Any = None, **_: Any) -> None:
        if self.worker is not None:
            self.worker.setup_logging(loglevel)

    @guarded
    def _worker_ready(self, **_: Any) -> None:
        if self.worker is not None:
            self.worker.ready()

    @guarded
    def _worker_shutdown(self, **_: Any) -> None:
        if self.worker is not None:
            self.worker.shutdown()

    @guarded
    def _process_init(self, **_: Any) -> None:
        if self.worker is not None:
            self.worker.process_started()

    @guarded
    def _process_shutdown(self, **_: Any) -> None:
        if self.worker is not None:
            self.worker.process_exiting()


def instrument_celery(celery_app: Any, settings: Settings | None = None) -> CeleryInstrumentation:
    """Instrument `celery_app`: call it where the app is defined (imported by web and worker).

    Tasks sent from an instrumented request carry its trace id; a worker of this app counts
    tasks (`celery_tasks_total`...), serves `/metrics` on `EXPORTER_CELERY_METRICS_PORT`,
    writes JSON logs with `task_id`, `task_name`, `queue` and the trace id, reports failures to
    the error store and Sentry, and reads its queues' depth. Idempotent.
    """
    with _lock:
        existing = _instrumented.get(celery_app)
        if existing is not None:
            return existing
        instrumentation = CeleryInstrumentation(celery_app, settings or load_settings())
        instrumentation.connect()
        _instrumented[celery_app] = instrumentation
        return instrumentation
