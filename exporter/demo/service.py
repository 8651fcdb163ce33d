"""The demo service: a small shop instrumented as a user's app is, in a process of its own
(`exporter demo`), which `exporter serve --demo` (`make run`) starts and watches."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from exporter.app import instrument
from exporter.config import Settings
from exporter.demo import DemoLoad, demo_router
from exporter.demo.shop import Catalog, shop_router
from exporter.errors.capture import enable_error_capture
from exporter.logs.setup import AppLogging
from exporter.runtime import runtime_of

# The load: mostly item look-ups (a few for items that do not exist: 404s and warnings), a
# checkout in four that fails at the error ratio, a slow report in ten.
SHOP_MIX: tuple[tuple[str, float], ...] = (
    ("/shop/items/{n}", 0.65),
    ("POST /shop/checkout", 0.25),
    ("/shop/report", 0.10),
)


def create_demo_app(settings: Settings, registry: CollectorRegistry | None = None) -> FastAPI:
    """The shop, instrumented: /metrics, its logs to the daily files (access log and slow
    requests too), its errors to the local store, and its own background load."""
    app = FastAPI(title=f"{settings.service_name} (demo shop)")
    catalog = Catalog(settings.demo_database_url, Path(settings.data_dir),
                      settings.demo_redis_url)
    load = DemoLoad(settings, app, mix=SHOP_MIX)
    app.include_router(shop_router(catalog, lambda: load.config))
    app.include_router(demo_router(load, settings))
    registry = registry if registry is not None else CollectorRegistry()
    instrument(app, settings, registry)
    runtime = runtime_of(app)
    assert runtime is not None
    enable_error_capture(app, settings)
    runtime.attach("logs", AppLogging(app, settings, registry))
    runtime.attach("demo load", load)
    return app
