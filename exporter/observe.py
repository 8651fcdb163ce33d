"""The observability API, the errors API, the live log tail and the status page, served by an
instrumented app about what it watches: itself (the sidecar, or a user's app instrumented with
`observability=True`), the targets it scrapes, or the service as Prometheus has it.

The health monitor (probes, history, alerts) is a runtime part. With several workers it runs in
one of them and the others read its state (health/shared.py): once per host, not per worker.
None of these routes count in the app's own HTTP metrics: a page polling every few seconds
would put its own requests into the QPS, error rate and latency it shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from exporter.api.errors import errors_router
from exporter.api.log_stream import log_stream_router
from exporter.api.observability import PREFIX, observability_router
from exporter.api.status_page import status_page_router
from exporter.config import Settings, multiprocess_directory
from exporter.errors.capture import ErrorCapture, enable_error_capture
from exporter.health.monitor import HealthMonitor
from exporter.health.notifications import NotificationStore
from exporter.health.shared import HostShare
from exporter.http.exposition import multiprocess_registry
from exporter.http.routes import route_templates
from exporter.logs.follow import LogFollower
from exporter.logs.tail import LogTail
from exporter.runtime import runtime_of


@dataclass
class Observability:
    """What `observe` set up on an app."""

    monitor: HealthMonitor
    tail: LogTail
    errors: ErrorCapture
    notifications: NotificationStore


def observe(
    app: Starlette, settings: Settings, registry: CollectorRegistry, *, page_path: str,
    tail_from_files: bool = True,
) -> Observability:
    """Serve the observability API, errors API, log tail and status page (at `page_path`) on
    the instrumented `app`; start the health monitor with it. `tail_from_files`: the live tail
    follows the daily files of EXPORTER_LOG_DIR (else the caller feeds `tail` itself)."""
    runtime = runtime_of(app)
    if runtime is None:
        raise RuntimeError("call instrument(app) before serving the observability API")
    if not isinstance(app, FastAPI):
        raise TypeError("the observability API is served by FastAPI apps; this is a "
                        f"{type(app).__name__}: instrument it without observability=True")
    multiproc_dir = multiprocess_directory()
    monitor = HealthMonitor(
        settings, registry,
        history_source=multiprocess_registry(multiproc_dir, registry) if multiproc_dir else None,
    )
    tail = LogTail(settings.log_tail_queue_lines, settings.log_tail_max_clients, registry)
    errors = enable_error_capture(app, settings)
    if tail_from_files:
        runtime.attach("log follower", LogFollower(Path(settings.log_dir), tail.publish))
    watching_self = monitor.targets is None and not monitor.engines
    if multiproc_dir and watching_self:  # one worker of the host runs it, the others read
        runtime.attach("health monitor", HostShare(monitor, Path(multiproc_dir)))
    else:
        runtime.attach("health monitor", monitor)
    notifications = NotificationStore(settings.alert_notifications_kept)
    app.include_router(observability_router(settings, monitor, errors.store, notifications))
    if errors.store is not None:
        app.include_router(errors_router(errors.store, settings))
    app.include_router(log_stream_router(settings, tail))
    app.include_router(status_page_router(settings, page_path))
    runtime.excluded.extend([page_path, *(
        path for path in route_templates(app.routes) if path.startswith(PREFIX))])
    return Observability(monitor, tail, errors, notifications)
