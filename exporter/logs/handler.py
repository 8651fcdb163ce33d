"""`DailyFilesHandler`: the root logger's handler that `setup_logging` installs; records go to
the daily files' writer thread, which makes their lines and passes them on to stdout (Loki's
shipper reads them from the files)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from exporter.logs import layout
from exporter.logs.files import DailyFiles
from exporter.logs.formatter import JsonFormatter, Snapshot


class DailyFilesHandler(logging.Handler):
    """Sends each record to the daily files: app (all), error (ERROR+), errors (with exception),
    and to stdout when `echo` is set.

    The caller only takes a snapshot of what the line needs (its message, the current trace,
    copies of flat `extra=` fields); the writer thread makes the line, in batches. Formatting
    one line at a time between a worker's other work cost about three times what it costs in a
    batch (measured in Celery workers). Records with an exception, or
    with `extra=` values that could change later, are formatted at once, in the caller.
    """

    def __init__(
        self, daily: DailyFiles, formatter: JsonFormatter, echo: bool = False, *,
        reported: Callable[[logging.LogRecord], bool],
    ) -> None:
        super().__init__()
        # True for an ERROR record whose exception another line has already written to errors/
        # (uvicorn repeating one the access log reported): it still goes to app and error.
        self._reported = reported
        self.setFormatter(formatter)
        self._json = formatter
        self._daily = daily
        self._base = layout.APP | (layout.STDOUT if echo else 0)
        self._render_later = self._render  # one bound method for every waiting line

    def handle(self, record: logging.LogRecord) -> bool:
        # Without the handler's lock: emit() only reads and enqueues (thread-safe as it is).
        rv: object = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace the record
            record = rv
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            kinds = self._base
            if record.levelno >= logging.ERROR:
                kinds |= layout.ERROR
                if record.exc_info and not self._reported(record):
                    kinds |= layout.ERRORS
            if "_exporter_json" not in record.__dict__:  # not formatted by an earlier handler
                snapshot = self._json.snapshot(record)
                if snapshot is not None:
                    self._daily.submit_deferred(self._render_later, (kinds, snapshot))
                    return
            self._daily.submit(kinds, self.format(record))
        except Exception:
            self.handleError(record)

    def _render(self, item: tuple[int, Snapshot]) -> list[tuple[int, str]]:
        """The line of a deferred record (on the writer thread)."""
        kinds, snapshot = item
        return [(kinds, self._json.render_snapshot(snapshot))]
