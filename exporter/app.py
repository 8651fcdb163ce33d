"""`instrument(app)` for the user's app, and `create_app()` for the sidecar."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.applications import Starlette

from exporter._version import __version__
from exporter.api.alert_webhook import alert_webhook_router
from exporter.api.invalid_input import reply_to_invalid_input
from exporter.api.logs import logs_router
from exporter.config import Settings, load_settings, multiprocess_directory, unknown_variables
from exporter.demo import DemoLoad, demo_router
from exporter.errors.capture import enable_error_capture
from exporter.host import HostCollector
from exporter.http.exposition import MetricsEndpoint, multiprocess_registry
from exporter.http.metrics import http_metrics_for
from exporter.http.middleware import PrometheusMiddleware
from exporter.logs.setup import AppLogging
from exporter.observe import observe
from exporter.registry_parts import parts_on
from exporter.runtime import Runtime, runtime_of


def _add_standard_collectors(registry: CollectorRegistry, settings: Settings) -> None:
    HostCollector(settings.disk_paths, registry=registry)
    if registry is not REGISTRY:  # prometheus_client puts these on its default registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)


def instrument(
    app: Starlette,
    settings: Settings | None = None,
    registry: CollectorRegistry | None = None,
    *,
    observability: bool = False,
) -> Starlette:
    """Add HTTP metrics, trace ids and a `/metrics` route to `app`; returns the same app.

    `observability=True` also serves, inside the app and about it, the observability API
    (`/api/v1/observability/...`), the errors API, the live log tail and the status page (at
    EXPORTER_STATUS_PAGE_PATH, `/observability`), with its health checks, history and alerts
    (see docs/health.md). The default stays metrics only.

    The middleware wraps the whole app, outside Starlette's error middleware, so a 500 produced
    from an unhandled exception is counted as the client saw it and carries `X-Trace-Id` too.
    Call it before the app starts serving. With `PROMETHEUS_MULTIPROC_DIR` set, `/metrics`
    reports the sum over all worker processes (see docs/multiprocess.md). The app's runtime
    (`exporter.runtime.runtime_of(app)`) holds what this sets up, and the parts features add.
    """
    if settings is None:
        settings = load_settings()
        for problem in unknown_variables(os.environ):  # a typo would silently change nothing
            logging.getLogger("exporter.config").warning("%s", problem)
    if registry is None:
        registry = REGISTRY
    if runtime_of(app) is not None:
        return app
    if getattr(app, "middleware_stack", None) is not None:
        raise RuntimeError("instrument(app) must be called before the app starts serving")
    multiproc_dir = multiprocess_directory()

    metrics = http_metrics_for(
        registry, settings.http_buckets, bool(multiproc_dir), settings.http_metrics)
    runtime = Runtime(settings, registry, metrics, multiprocess_dir=multiproc_dir)
    parts_on(registry).get_or_create(
        "standard collectors", lambda: _add_standard_collectors(registry, settings))
    scrape = (
        multiprocess_registry(multiproc_dir, registry)
        if multiproc_dir
        else registry
    )
    app.add_route(settings.metrics_path, MetricsEndpoint(scrape).__call__, include_in_schema=False)

    build_stack: Callable[[], Any] = app.build_middleware_stack

    def build_instrumented_stack() -> Any:
        return PrometheusMiddleware(
            build_stack(),
            metrics=metrics,
            # The scrape endpoint is never a request of the service, wherever it is mounted.
            excluded_paths=(*settings.excluded_paths, *runtime.excluded),
            routes_from=app,
            observers=runtime.observers,
            error_observers=runtime.error_observers,
        )

    app.build_middleware_stack = build_instrumented_stack  # type: ignore[method-assign]
    runtime.bind(app)
    if observability:
        observe(app, settings, registry, page_path=settings.status_page_path)
    return app


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> FastAPI:
    """The sidecar: an instrumented FastAPI app with `/metrics`, `/healthz`, the status page,
    the observability, errors, logs and alert-webhook APIs, and maybe the demo."""
    if settings is None:
        settings = load_settings()
    registry = REGISTRY if registry is None else registry
    app = FastAPI(title="exporter sidecar", version=__version__)
    # httpx logs every request at INFO: the sidecar's scrapes and queries would flood its logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    reply_to_invalid_input(app)
    demo_load = DemoLoad(settings, app) if settings.demo else None

    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    if demo_load is not None:
        app.include_router(demo_router(demo_load, settings))
    instrument(app, settings, registry)
    runtime = runtime_of(app)
    assert runtime is not None
    # The parts start in this order when the app starts, and stop in reverse: the error
    # capture last, after the log sinks, the monitor first.
    enable_error_capture(app, settings)
    logs = runtime.attach("logs", AppLogging(app, settings, registry))
    if demo_load is not None:
        runtime.attach("demo load", demo_load)
    # Watching itself, the live tail gets the lines as its writer writes them; watching other
    # apps, it follows their daily files in EXPORTER_LOG_DIR.
    watching_self = not (settings.targets or settings.targets_file or settings.prometheus_url)
    seen = observe(app, settings, registry, page_path="/", tail_from_files=not watching_self)
    if watching_self:
        logs.listeners.append(seen.tail.publish)
    app.state.health_monitor = seen.monitor
    app.include_router(logs_router(settings))
    app.include_router(alert_webhook_router(settings, seen.notifications))
    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers: every setting comes from `EXPORTER_*` variables."""
    return create_app(load_settings())
