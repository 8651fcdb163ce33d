"""Capturing errors: unhandled request exceptions, logged exceptions and explicit calls."""

from __future__ import annotations

import functools
import json
import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from starlette.applications import Starlette

from exporter.config import Settings
from exporter.errors import sentry
from exporter.errors.event import CAPTURED_MARK, Occurrence, occurrence
from exporter.errors.scrub import safe_str, scrub_text
from exporter.errors.sentry_trace import trace_context
from exporter.errors.store import ErrorStore
from exporter.errors.worker import BackgroundWorker
from exporter.http.middleware import CompletedRequest, current_request
from exporter.http.trace import current_trace
from exporter.registry_parts import parts_on
from exporter.runtime import runtime_of

_log = logging.getLogger("exporter.errors")
OTHER_TYPE = "other"
STORE_DROP_REASONS = ("queue_full", "write_failed")
PART = "error capture"  # its name among the parts of an app's runtime


class ExceptionMetrics:
    """`exceptions_total{exception_type}` with at most `max_types` values; the rest are `other`."""

    def __init__(self, registry: CollectorRegistry, max_types: int = 50) -> None:
        self.max_types = max_types
        self.total = Counter(
            "exceptions_total",
            "Exceptions captured (unhandled, logged or reported), by exception type.",
            ("exception_type",),
            registry=registry,
        )
        self.dropped = Counter(
            "errors_store_dropped_total",
            "Captured errors not in the local error store: its queue was full (queue_full), or "
            "SQLite refused the write (write_failed: locked past the busy timeout, disk full...).",
            ("reason",),
            registry=registry,
        )
        for reason in STORE_DROP_REASONS:  # present at 0: increase() sees the first drop
            self.dropped.labels(reason)
        self.sentry_dropped = Counter(
            "errors_sentry_dropped_total",
            "Captured errors not reported to Sentry: over EXPORTER_SENTRY_EVENTS_PER_SECOND "
            "(rate_limited), within a second of the group's last event (group_interval), with "
            "the report queue full (queue_full); or sent and not delivered: connection failed "
            "(network_error), timed out (timeout), Sentry answered 4xx (http_4xx) or 5xx "
            "(http_5xx) or rate-limits us (sentry_rate_limited), sentry-sdk's queue was full "
            "(transport_queue_full).",
            ("reason",),
            registry=registry,
        )
        self._children: dict[str, Any] = {}
        self._other: Any = None
        self._drop_children: dict[str, Any] = {}
        self._lock = threading.Lock()

    def store_drop(self, reason: str, events: int = 1) -> None:
        """Count `events` not written to the store, by `reason` (one of STORE_DROP_REASONS)."""
        self.dropped.labels(reason).inc(events)

    def sentry_drop(self, reason: str, events: int = 1) -> None:
        """Count `events` not reported to Sentry, by `reason` (one of sentry.DROP_REASONS)."""
        child = self._drop_children.get(reason)
        if child is None:
            child = self._drop_children[reason] = self.sentry_dropped.labels(reason)
        child.inc(events)

    def sentry_on(self) -> None:
        """Sentry reporting started: every drop reason is present, at 0 until it happens."""
        for reason in sentry.DROP_REASONS:
            self.sentry_drop(reason, 0)

    def inc(self, type_name: str) -> None:
        """Count one exception of `type_name`."""
        child = self._children.get(type_name)
        if child is None:
            with self._lock:
                if len(self._children) < self.max_types:
                    child = self._children[type_name] = self.total.labels(type_name)
                else:  # the types past the first max_types share one child, looked up once
                    child = self._other = self._other or self.total.labels(OTHER_TYPE)
        child.inc()

    @classmethod
    def on(cls, registry: CollectorRegistry) -> ExceptionMetrics:
        """The registry's exception metrics, created on first use."""
        return parts_on(registry).get_or_create("exception metrics", lambda: cls(registry))


class ErrorCapture:
    """Turns exceptions into scrubbed events for the metric, the store and (explicit) Sentry."""

    def __init__(
        self, settings: Settings, store: ErrorStore | None, registry: CollectorRegistry
    ) -> None:
        self.settings = settings
        self.store = store
        self.release = sentry.release_of(settings)
        self.metrics = ExceptionMetrics.on(registry)
        self.writer = (
            BackgroundWorker(
                functools.partial(self._write, store), name="error-store",
                periodic=store.prune, on_drop=lambda: self.metrics.store_drop("queue_full"),
                on_failure=lambda n: self.metrics.store_drop("write_failed", n), linger=0.1,
            )
            if store is not None else None
        )
        self.log_handler = ErrorLogHandler(self)
        self.sentry_started = False

    def _write(self, store: ErrorStore, events: list[Occurrence]) -> None:
        refused = store.record(events)
        if refused:
            self.metrics.store_drop("write_failed", refused)

    def capture(
        self,
        exc: BaseException,
        *,
        route: str | None = None,
        method: str | None = None,
        trace_id: str | None = None,
        context: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
        span_id: str | None = None,
    ) -> str | None:
        """Record `exc` once; returns its fingerprint, or None when it was already captured.
        Without `trace_id`, the current request's or task's trace (and span) is the event's."""
        try:
            if getattr(exc, CAPTURED_MARK, False):
                return None
            try:
                setattr(exc, CAPTURED_MARK, True)
            except (AttributeError, TypeError):  # exceptions with __slots__
                pass
            if route is None and method is None:
                # Logged or reported inside a request: the request's route and method.
                route, method = current_request() or (None, None)
            if trace_id is None:
                trace = current_trace()
                if trace is not None:
                    trace_id, span_id = trace.trace_id, trace.span_id
            row = occurrence(exc, route=route, method=method, trace_id=trace_id,
                             release=self.release, environment=self.settings.environment,
                             context=context)
            self.metrics.inc(row[1])  # the type
            if self.writer is not None:
                self.writer.submit(row)
            if self.sentry_started:
                tags = {"route": route} if route is not None else {}
                if trace_id is not None:
                    tags["trace_id"] = trace_id
                sentry.report(sentry.SentryReport(
                    exc, row[0], tags, json.loads(row[12]) if row[12] else None, request,
                    trace_context(trace_id, span_id)))
            return row[0]  # the fingerprint
        except Exception:  # capturing must never break the caller
            _log.warning("error capture failed", exc_info=False)
            return None

    def observe(self, done: CompletedRequest) -> None:
        """Request observer: captures the exception that escaped the app, if any."""
        if done.exception is not None:
            request = _request_info(done) if self.sentry_started else None
            self.capture(done.exception, route=done.route, method=done.method,
                         trace_id=done.trace_id, request=request, span_id=done.span_id)

    def start(self) -> None:
        """Nothing to start: capturing begins when enabled, and the store writer's thread with
        the first error (a runtime part's `start`)."""

    def stop(self, timeout: float = 5.0) -> None:
        """Detach the log handler and drain the store writer (idempotent)."""
        logging.getLogger().removeHandler(self.log_handler)
        if self.writer is not None:
            self.writer.stop(timeout)
        if self.sentry_started:
            self.sentry_started = False
            sentry.shutdown_sentry(min(timeout, 2.0))
        global _active
        if _active is self:
            _active = None


class ErrorLogHandler(logging.Handler):
    """Captures ERROR records that carry an exception (`logger.exception(...)`)."""

    def __init__(self, capture: ErrorCapture) -> None:
        super().__init__(logging.ERROR)
        self._capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        exc = _logged_exception(record)
        # Our own loggers are skipped: a failing store must not feed itself. A logged exception
        # has no app to ask: it goes to the process's active capture, as capture_exception()
        # does, so an app built and never served (or a previous one) does not take it.
        if (exc is None or record.name == "exporter" or record.name.startswith("exporter.")
                or _active is not self._capture):
            return
        try:
            message = scrub_text(record.getMessage())[:500]
        except Exception:  # bad %-arguments: the template, scrubbed too
            message = scrub_text(safe_str(record.msg))[:500]
        self._capture.capture(exc, context={"logger": record.name, "log_message": message})


def _logged_exception(record: logging.LogRecord) -> BaseException | None:
    """The exception a record carries. Celery logs a task's failure in the prefork pool's
    wrapper, billiard's `ExceptionWithTraceback` (the exception in `.exc`): unwrapped, it is
    the exception `task_failure` already captured under the task's route, not a second group."""
    exc = record.exc_info[1] if record.exc_info else None
    inner = getattr(exc, "exc", None)
    if type(exc).__name__ == "ExceptionWithTraceback" and isinstance(inner, BaseException):
        return inner
    return exc


# Process-wide by nature: `logging`'s root logger, `capture_exception()` and Celery's task
# failures have no app to ask, so they report to the process's one active capture, set only
# through `set_active_capture()` (and cleared when that capture stops).
_active: ErrorCapture | None = None


def capture_exception(exc: BaseException, **context: Any) -> str | None:
    """Report `exc` to the error store and Sentry, with `context` (scrubbed) on the sample.

    Returns the group's fingerprint, or None when error capture is not enabled (see
    `enable_error_capture`) or `exc` was already captured.
    """
    capture = _active
    if capture is None:
        return None
    return capture.capture(exc, context=context)


def set_active_capture(capture: ErrorCapture) -> None:
    """Make `capture` the one `capture_exception()` reports to (the last one set wins, until it
    stops)."""
    global _active
    _active = capture


def enable_error_capture(app: Starlette, settings: Settings | None = None) -> ErrorCapture:
    """Capture `app`'s errors into the local store (and Sentry when a DSN is set).

    Call after `instrument(app)` and before the app serves. The capture is a part of the app's
    runtime: its writer stops with the app's lifespan, and at exit. An unusable data directory
    leaves the metric and Sentry working.
    """
    runtime = runtime_of(app)
    if runtime is None:
        raise RuntimeError("call instrument(app) before enable_error_capture(app)")
    enabled = runtime.part(PART)
    if isinstance(enabled, ErrorCapture):
        return enabled
    settings = settings or runtime.settings
    try:
        store: ErrorStore | None = ErrorStore.in_directory(
            settings.data_dir,
            max_groups=settings.errors_max_groups,
            samples_per_group=settings.errors_samples_per_group,
            retention_days=settings.errors_retention_days,
        )
    except Exception as exc:
        _log.warning("error store unavailable in %s: %s", settings.data_dir, exc)
        store = None
    capture = ErrorCapture(settings, store, runtime.registry)
    # The middleware sees exceptions of Starlette apps; the observer those of other ASGI apps.
    runtime.add_observer(capture.observe, errors_only=True)
    logging.getLogger().addHandler(capture.log_handler)
    capture.sentry_started = sentry.init_sentry(
        settings, on_drop=capture.metrics.sentry_drop
    )
    if capture.sentry_started:
        capture.metrics.sentry_on()
    set_active_capture(capture)
    return runtime.attach(PART, capture)


def _request_info(done: CompletedRequest) -> dict[str, Any]:
    """What Sentry's request interface needs, raw: scrubbed later, off the request path."""
    return {
        "method": done.method,
        "scheme": done.scheme,
        "root_path": "",
        "path": done.path,
        "query_string": done.query_string,
        "headers": list(done.headers),
    }
