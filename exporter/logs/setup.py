"""`setup_logging(settings)`: root and uvicorn loggers to stdout, daily files and Loki; and
`enable_access_log(app)`."""

from __future__ import annotations

import atexit
import logging

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from exporter.config import Settings, load_settings
from exporter.http.instrumentation import instrumentation
from exporter.logs.sinks import OURS, LogSinks, access_observer, activate, note_access_log

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def route_uvicorn_loggers(access: bool = False) -> None:
    """Send uvicorn's loggers through the root handlers; `access=False` mutes uvicorn.access
    (our own access log replaces it). Call again after uvicorn configured its logging."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = not access


def setup_logging(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> LogSinks:
    """Route the root logger and uvicorn's loggers to stdout, daily files and Loki (when
    `EXPORTER_LOKI_URL` is set); returns the sinks. Calling it again replaces the previous set-up.
    Everything is flushed at exit even without `close()`."""
    if settings is None:
        settings = load_settings()
    previous = activate(None)
    if previous is not None:
        previous.close()
    sinks = LogSinks(settings, registry)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, OURS, False):
            root.removeHandler(handler)
    for handler in sinks.handlers:
        root.addHandler(handler)
    # The level filters our sinks, not the root logger: with EXPORTER_LOG_LEVEL=critical a
    # logger.exception(...) must still reach the error capture's handler (level ERROR).
    level = logging.getLevelName(settings.log_level.upper())
    for handler in sinks.handlers:
        handler.setLevel(level)
    root.setLevel(min(level, logging.ERROR))
    route_uvicorn_loggers(access=False)
    activate(sinks)
    atexit.register(sinks.close)
    return sinks


def enable_access_log(app: Starlette) -> Starlette:
    """Write access_*.log and slow_requests_*.log lines for `app` (already `instrument`ed) while
    logging is set up. Idempotent; returns the app."""
    state = instrumentation(app)
    if state is None:
        raise RuntimeError("call instrument(app) before enable_access_log(app)")
    if access_observer not in state.observers:
        note_access_log(app)
        state.add_observer(access_observer)
    return app
