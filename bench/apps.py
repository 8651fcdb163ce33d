"""The app `http_overhead.py` serves, in three variants that differ only in HTTP instrumentation.

uvicorn loads one variant per process through a factory (`--factory apps:ours_app`), so each
variant has its own default prometheus registry and nothing leaks between them.
"""

from __future__ import annotations

import gc
import os

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse

# Enough routes that matching a path is not trivially cheap: the router (and our resolver, on a
# cache miss) tries them in order, and the benchmarked `/items/{item_id}` comes late, as a
# typical resource route does in a real service.
_RESOURCES = (
    "users", "orders", "invoices", "payments", "carts", "reviews",
    "shipments", "coupons", "vendors", "categories",
)


def _add_filler_routes(app: FastAPI) -> None:
    router = APIRouter(prefix="/api")
    for resource in _RESOURCES:

        async def listing(limit: int = 10, _resource: str = resource) -> dict[str, object]:
            return {"resource": _resource, "limit": limit, "items": []}

        async def detail(key: int, _resource: str = resource) -> dict[str, object]:
            return {"resource": _resource, "id": key}

        router.add_api_route(f"/{resource}", listing, methods=["GET"])
        router.add_api_route(f"/{resource}/{{key}}", detail, methods=["GET"])
    app.include_router(router)


def _counting_instructions() -> None:
    # http_instructions.py counts instructions under callgrind: where a cyclic collection of
    # FastAPI's large object graph falls would move a count by several per cent, so it is off.
    if os.environ.get("BENCH_GC_OFF") == "1":
        gc.disable()


def bare_app() -> FastAPI:
    """The uninstrumented app: the baseline every variant is compared with."""
    _counting_instructions()
    app = FastAPI(title="bench")
    _add_filler_routes(app)

    @app.get("/ping", response_class=PlainTextResponse)
    async def ping() -> str:
        return "pong"

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
        return {"item_id": item_id, "name": f"item {item_id}", "price": 9.99, "q": q}

    return app


def ours_app() -> FastAPI:
    """The same app with `exporter.instrument(app)` (default settings, default registry)."""
    from exporter.app import instrument
    from exporter.config import load_settings

    app = bare_app()
    instrument(app, load_settings())
    return app


def instrumentator_app() -> FastAPI:
    """The same app with prometheus-fastapi-instrumentator's defaults, exposed on /metrics."""
    from prometheus_fastapi_instrumentator import Instrumentator

    app = bare_app()
    Instrumentator().instrument(app).expose(app)
    return app
