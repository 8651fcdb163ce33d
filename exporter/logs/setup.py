"""`setup_logging(settings)`: root and uvicorn loggers to stdout, daily files and Loki;
`enable_access_log(app)`; and `AppLogging`, the logging of an app as a part of its runtime."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from exporter.config import Settings, load_settings
from exporter.logs.sinks import OURS, LogSinks, access_observer, activate, note_access_log
from exporter.runtime import runtime_of

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def route_uvicorn_loggers(access: bool = False) -> None:
    """Send uvicorn's loggers through the root handlers; `access=False` mutes uvicorn.access
    (our own access log replaces it). Call again after uvicorn configured its logging.

    Muted, uvicorn.access has no handler and does not propagate: uvicorn asks
    `hasHandlers()` of it for each connection and, when True, builds the arguments of an
    access line for every request (client address, path, a %-format) even though a disabled
    logger then drops it; that cost about 11,000 CPU instructions a request (callgrind)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.disabled = not access
    uvicorn_access.propagate = access


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
    runtime = runtime_of(app)
    if runtime is None:
        raise RuntimeError("call instrument(app) before enable_access_log(app)")
    if access_observer not in runtime.observers:
        note_access_log(app)
        runtime.add_observer(access_observer)
    return app


class AppLogging:
    """A runtime part: `setup_logging` when the app starts, the sinks closed when it stops;
    `listeners` hear each batch the files write (the live tail); the app's access log on."""

    def __init__(
        self, app: Starlette, settings: Settings, registry: CollectorRegistry | None = None,
        listeners: Iterable[Callable[[dict[int, list[str]]], None]] = (),
    ) -> None:
        self.app = app
        self.settings = settings
        self.registry = registry
        self.listeners = list(listeners)
        self.sinks: LogSinks | None = None

    def start(self) -> None:
        """Set logging up. At start-up, not when the app is made: uvicorn configures its
        loggers after importing the app."""
        self.sinks = setup_logging(self.settings, self.registry)
        for listener in self.listeners:
            self.sinks.files.listen(listener)
        enable_access_log(self.app)

    def stop(self, timeout: float) -> None:
        """Flush and close the sinks (each within its own deadline). Idempotent."""
        sinks, self.sinks = self.sinks, None
        if sinks is not None:
            sinks.close()
