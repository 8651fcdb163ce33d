"""What `instrument(app)` set up for one app, found again from the app by the features that
hook into its requests later (access log, error capture)."""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from exporter.config import Settings
from exporter.http.metrics import HttpMetrics
from exporter.http.middleware import RequestObserver


class Instrumentation:
    """What `instrument(app)` set up for one app; later features hook in through it."""

    def __init__(
        self, settings: Settings, registry: CollectorRegistry, metrics: HttpMetrics
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        # Shared with the middleware: observers added later still see every request.
        self.observers: list[RequestObserver] = []
        # Paths and templates not counted beside the settings' (read when the app first serves).
        self.excluded: list[str] = [settings.metrics_path]

    def add_observer(self, observer: RequestObserver) -> None:
        """Call `observer` with each completed request (access log, error capture...)."""
        self.observers.append(observer)


_instrumented: weakref.WeakKeyDictionary[Starlette, Instrumentation] = (
    weakref.WeakKeyDictionary()
)


def instrumentation(app: Starlette) -> Instrumentation | None:
    """The instrumentation `instrument(app)` set up, or None for an app it never saw."""
    return _instrumented.get(app)


def attach(app: Starlette, state: Instrumentation) -> None:
    """Make `state` what `instrumentation(app)` returns: `instrument(app)` calls it once."""
    _instrumented[app] = state
