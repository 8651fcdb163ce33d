"""Task failures to the local error store and Sentry, through the errors package's capture.

One `ErrorCapture` per process: a SQLite connection and background threads do not survive a
fork, so each pool child makes its own after it starts.
"""

from __future__ import annotations

import logging
import os
import reprlib
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.celery.context import TASK_METHOD
from exporter.config import Settings
from exporter.errors import sentry
from exporter.errors.capture import ErrorCapture, set_active_capture
from exporter.errors.scrub import scrub_value
from exporter.errors.store import ErrorStore

log = logging.getLogger("exporter.celery")
# Arguments are samples for a human, not data: short reprs keep a big payload out of the store.
_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 20


def _short(value: Any) -> Any:
    """`value` kept as JSON-like data when small and simple, else a short repr."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= 200 else _repr.repr(value)
    if isinstance(value, dict) and len(value) <= 20:
        return {str(k): _short(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and len(value) <= 20:
        return [_short(v) for v in value]
    return _repr.repr(value)


def task_context(
    task_name: str, task_id: str | None, queue: str | None, args: Any, kwargs: Any
) -> dict[str, Any]:
    """The sample's context for a failed task: args and kwargs scrubbed of secrets."""
    context: dict[str, Any] = scrub_value({
        "task": task_name, "task_id": task_id, "queue": queue,
        "args": _short(list(args) if isinstance(args, (list, tuple)) else args),
        "kwargs": _short(kwargs),
    })
    return context


class TaskErrors:
    """Creates this process's `ErrorCapture` on first use and reports task failures to it."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self._capture: ErrorCapture | None = None
        self._pid = 0

    def capture(self) -> ErrorCapture:
        """This process's capture (made after a fork, never inherited)."""
        if self._capture is not None and self._pid == os.getpid():
            return self._capture
        settings = self.settings
        try:
            store: ErrorStore | None = ErrorStore.in_directory(
                settings.data_dir, max_groups=settings.errors_max_groups,
                samples_per_group=settings.errors_samples_per_group,
                retention_days=settings.errors_retention_days,
            )
        except Exception as exc:
            log.warning("error store unavailable in %s: %s", settings.data_dir, exc)
            store = None
        capture = ErrorCapture(settings, store, self.registry)
        # sentry-sdk and its reporter thread are fork-aware: started once per process tree.
        capture.sentry_started = sentry.sentry_enabled() or sentry.init_sentry(
            settings, on_drop=capture.metrics.sentry_drop
        )
        root = logging.getLogger()
        if self._capture is not None:
            root.removeHandler(self._capture.log_handler)
        root.addHandler(capture.log_handler)  # logger.exception(...) inside tasks
        # `exporter.capture_exception()` called from task code reports here too.
        set_active_capture(capture)
        self._capture, self._pid = capture, os.getpid()
        return capture

    def task_failed(
        self, exc: BaseException, task_name: str, task_id: str | None, queue: str | None,
        args: Any, kwargs: Any,
    ) -> str | None:
        """Record a task's exception; returns the group's fingerprint."""
        return self.capture().capture(
            exc, route=task_name, method=TASK_METHOD,
            context=task_context(task_name, task_id, queue, args, kwargs),
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (within `timeout`) in this process. Idempotent."""
        capture = self._capture
        if capture is not None and self._pid == os.getpid():
            capture.stop(timeout)
            if capture.store is not None:
                capture.store.close()
            self._capture = None
