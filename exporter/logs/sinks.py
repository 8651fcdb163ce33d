"""`LogSinks`: what `setup_logging` installs (the formatter, the daily files, maybe the Loki
shipper), and the process's one active set of them.

The sinks are process-wide by nature: they hang on the root logger, which is the process's,
and the access log of every app in the process writes to the same files. So the active sinks
and the apps that write access lines are kept here, for the whole process, and changed only
through `activate()`, `LogSinks.close()` and `note_access_log()`.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from exporter.config import Settings
from exporter.errors.scrub import safe_str
from exporter.http.middleware import CompletedRequest
from exporter.logs import layout
from exporter.logs.access_line import AccessLine, plain
from exporter.logs.file_shipper import FileShipper
from exporter.logs.files import DailyFiles
from exporter.logs.formatter import JsonFormatter
from exporter.logs.handler import DailyFilesHandler
from exporter.logs.line_fields import MAX_HINTS, metadata_from
from exporter.logs.loki_config import LokiConfig
from exporter.logs.positions import positions_path
from exporter.registry_parts import parts_on
from exporter.thresholds import slow_request_seconds

OURS = "_exporter_log_sink"  # marks the handlers setup_logging added to the root logger
_lock = threading.Lock()
_active: LogSinks | None = None
_access_logged: weakref.WeakSet[object] = weakref.WeakSet()  # apps whose access log is on


def _reported_by_access_log(record: logging.LogRecord) -> bool:
    """uvicorn's "Exception in ASGI application" repeats, without the trace id, an exception
    the access-log observer has already written to errors/ with it."""
    return (
        bool(_access_logged)
        and record.name == "uvicorn.error"
        and str(record.msg).startswith("Exception in ASGI application")
    )


class LogSinks:
    """What `setup_logging` installed: the formatter, the daily files and maybe the shipper."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.formatter = JsonFormatter(
            settings.service_name, settings.environment, settings.log_redact_keys
        )
        dropped = _file_drop_counter(REGISTRY if registry is None else registry)
        # stdout as it is now: a Celery pool child swaps its LoggingProxy out around this call.
        self._echo = sys.stdout if settings.log_stdout else None
        self.files = DailyFiles(
            settings.log_dir, settings.log_retention_days, on_drop=dropped.inc, echo=self._echo
        )
        # Loki gets the lines from the files (app_*, access_*), read from positions kept on
        # disk: what reached a file reaches Loki, even after a kill -9.
        self.shipper: FileShipper | None = None
        if settings.loki_url:
            self.shipper = FileShipper(
                _loki_config(settings), settings.log_dir,
                positions_path(settings.data_dir, settings.log_dir), registry)
            self.files.listen(self.shipper.wake)
        # One handler: stdout gets its lines from the file writer, in batches (after close,
        # from `self.stdout`).
        self.handlers: list[logging.Handler] = [
            DailyFilesHandler(self.files, self.formatter, self._echo is not None,
                              reported=_reported_by_access_log)
        ]
        self.stdout: logging.Handler | None = None
        for handler in self.handlers:
            setattr(handler, OURS, True)
        self._access_later = self._access_lines  # one bound method for every waiting request
        self._access = AccessLine(self.formatter)
        self._slow_from: float | None = None
        self._scrubbed: dict[str, str] = {}  # see _scrub
        self._closed = False

    def backlog(self) -> str | None:
        """Why ingested entries should wait (None: they can be taken now).

        The files' queue drops what does not fit, which is right for a process's own logging
        (it must never wait) but not for entries a client sent us: the ingestion API refuses a
        batch with 429 once the queue is half full, so the client retries it later and the other
        half stays free for concurrent batches and our own lines. (Loki needs no such bound: the
        shipper reads the files, which are on disk.)
        """
        if self.files.queued * 2 > self.files.capacity:
            return f"{self.files.queued} lines wait for the log files"
        return None

    def write_entry(self, created: float, level: str, fields: dict[str, Any]) -> None:
        """Queue one entry that did not come through `logging` for the files (not waiting)."""
        self._queue_line(level, self.render_entry(created, level, fields))

    def render_entry(self, created: float, level: str, fields: dict[str, Any]) -> str:
        """The JSON line of an ingested entry (secrets redacted), not yet written."""
        return self.formatter.render_fields(created, level, "exporter.ingest", fields)

    def write_lines(self, lines: Sequence[tuple[str, str]], timeout: float) -> str | None:
        """Write `(level, line)` pairs from `render_entry` to the files and wait until the
        kernel has them (Loki's shipper reads them there): None once they are all written,
        else why they may not be (some may be: a client that sends them again may send
        copies). Written means a `kill -9` cannot lose them; a power loss still can."""
        failures = self.files.write_failures
        refused = sum(not self._queue_line(level, line) for level, line in lines)
        if refused:
            return f"the log files' queue was full for {refused} of {len(lines)} lines"
        if not self.files.flush(timeout):
            return f"the log files did not confirm the write within {timeout:g} s"
        if self.files.write_failures != failures:
            return "the log files could not be written (see log_file_lines_dropped_total)"
        return None

    def _queue_line(self, level: str, line: str) -> bool:
        kinds = layout.APP
        if level in ("error", "critical"):
            kinds |= layout.ERROR
        return self.files.submit(kinds, line)

    def observe_request(self, done: CompletedRequest) -> None:
        """The access-log observer: hands the request to the writer thread, which formats it."""
        # A plain tuple of the request's values (not the request, which holds its headers):
        # see DailyFiles.submit_deferred.
        self.files.submit_deferred(self._access_later, (
            time.time(), done.method, done.route, done.path, done.status, done.duration,
            done.client, done.trace_id, done.span_id, done.exception))

    def _access_lines(self, request: _AccessItem) -> list[tuple[int, str]]:
        (created, method, route, path, status, duration, client, trace_id, span_id,
         exception) = request
        slow_from = self._slow_from
        if slow_from is None:  # read once (a bad thresholds file raises here, each time)
            slow_from = self._slow_from = slow_request_seconds(self.settings)
        slow = duration >= slow_from
        level = "error" if status >= 500 else "warning" if slow else "info"
        scrubbed = self._scrubbed
        path = scrubbed.get(path) or self._scrub(path)  # once: the message is made of it
        duration_ms = round(duration * 1000, 3)
        if exception is None and self._access.fits and plain(
                status, duration_ms, client, trace_id, span_id):
            # The client (X-Forwarded-For through a proxy) and the trace id (X-Request-Id) may
            # come from the request: scrubbed. The span id is always one the kit made (random,
            # or the OpenTelemetry span's), 16 hex digits.
            if client is not None:
                client = scrubbed.get(client) or self._scrub(client)
            trace_id = self.formatter.redactor.text(trace_id)
            line = self._access.line(created, level, method, route, path, status, duration_ms,
                                     client, trace_id, span_id)
            shipper = self.shipper
            hints = shipper.hints if shipper is not None else None
            if hints is not None:  # what the shipper would read from the line, told instead
                if len(hints) >= MAX_HINTS:  # not read: another process leads now, or a skip
                    hints.clear()
                hints[line] = (round(created * 1000) * 1_000_000, level,
                               self.formatter.service, metadata_from(trace_id, span_id))
            return [(layout.ACCESS | (layout.SLOW if slow else 0), line)]
        formatter = self.formatter
        fields: dict[str, Any] = {  # in the order of AccessLine's
            "message": f"{method} {path} {status}",
            "service": formatter.service, "env": formatter.env,
            "trace_id": trace_id, "span_id": span_id,
            "method": method, "route": route, "path": path,
            "status": status, "duration_ms": duration_ms, "client": client,
        }
        line = self.formatter.render_fields(
            created, level, "exporter.access", fields, _ACCESS_TRUSTED)
        out = [(layout.ACCESS | (layout.SLOW if slow else 0), line)]
        if exception is not None:
            exc = exception
            fields["exc_type"] = type(exc).__name__
            fields["exc_message"] = safe_str(exc)  # a broken __str__ must not lose the lines
            try:
                stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            except Exception:
                stack = f"<traceback unavailable: {fields['exc_type']}>"
            fields["stack"] = stack
            out.append((layout.ERRORS, self.formatter.render_fields(
                created, "error", "exporter.access", fields)))
        return out

    def _scrub(self, text: str) -> str:
        """`text` scrubbed, and remembered when short: access lines repeat their paths and
        clients, and scrubbing one cost more than looking it up (writer thread only)."""
        clean = self.formatter.redactor.text(text)
        if len(text) <= _SCRUBBED_CHARS:
            if len(self._scrubbed) >= _SCRUBBED_TEXTS:
                self._scrubbed.clear()
            self._scrubbed[text] = clean
        return clean

    def close(self) -> None:
        """Flush and stop the shipper (within its deadline) and the file writer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _deactivate(self)
        root = logging.getLogger()
        if self._echo is not None and self.stdout is None:
            # stdout stays, now written directly, so what the server says after shutdown
            # (uvicorn's last lines) still shows; the next setup_logging replaces it. Added
            # before the file handler goes: a line logged meanwhile may show twice, never not.
            self.stdout = logging.StreamHandler(self._echo)
            self.stdout.setFormatter(self.formatter)
            self.stdout.setLevel(self.handlers[0].level)
            setattr(self.stdout, OURS, True)
            root.addHandler(self.stdout)
        for handler in self.handlers:
            root.removeHandler(handler)
        # The shipper reads what the writer wrote: stop the writer first.
        self.files.stop()
        if self.shipper is not None:
            self.shipper.close()
        atexit.unregister(self.close)


# Access-line fields not scrubbed again: the path (scrubbed once) and what is made of it, the
# method (a standard one or OTHER), the route template (the app's own), numbers, the configured
# service and env. The client (X-Forwarded-For through a proxy) and the ids (X-Request-Id) come
# from the request: scrubbed.
_ACCESS_TRUSTED = frozenset({"message", "path", "method", "route", "status", "duration_ms",
                             "service", "env"})
_SCRUBBED_TEXTS = 4096  # paths and clients remembered scrubbed, at most...
_SCRUBBED_CHARS = 256  # ...each this long at most
# (created, method, route, path, status, duration, client, trace_id, span_id, exception)
_AccessItem = tuple[float, str, str, str, int, float, "str | None", str, str,
                    "BaseException | None"]


def _file_drop_counter(registry: CollectorRegistry) -> Counter:
    return parts_on(registry).get_or_create("log file drops", lambda: Counter(
        "log_file_lines_dropped", "Log lines the daily files could not take.", registry=registry))


def _loki_config(settings: Settings) -> LokiConfig:
    secret = settings.loki_password.get_secret_value() if settings.loki_password else ""
    bearer = settings.loki_bearer_token.get_secret_value() if settings.loki_bearer_token else ""
    return LokiConfig(
        url=settings.loki_url, spool_dir=settings.data_dir / "loki-spool",
        service=settings.service_name, env=settings.environment,
        static_labels=dict(settings.loki_labels), tenant=settings.loki_tenant,
        username=settings.loki_username, password=secret, bearer_token=bearer,
        batch_lines=settings.loki_batch_lines, batch_bytes=settings.loki_batch_bytes,
        batch_wait=settings.loki_batch_wait_seconds,
        spool_max_bytes=settings.loki_spool_max_bytes,
        close_timeout=settings.loki_close_timeout_seconds,
        push_timeout=settings.loki_push_timeout_seconds,
    )


def activate(sinks: LogSinks | None) -> LogSinks | None:
    """Make `sinks` the process's active sinks (until they close; None: no sinks); returns the
    previous ones, for the caller to close."""
    global _active
    with _lock:
        previous, _active = _active, sinks
    return previous


def _deactivate(sinks: LogSinks) -> None:
    global _active
    with _lock:
        if _active is sinks:
            _active = None


def active_sinks() -> LogSinks | None:
    """The sinks of the last `setup_logging`, or None when logging is not set up."""
    return _active


def access_observer(done: CompletedRequest) -> None:
    """The access-log observer of every app: hands the request to the active sinks, if any."""
    sinks = _active
    if sinks is not None:
        sinks.observe_request(done)


def note_access_log(app: object) -> None:
    """`app` writes access lines (with their exceptions): uvicorn's repeat of an exception is
    not written to errors/ again while any such app lives."""
    _access_logged.add(app)
