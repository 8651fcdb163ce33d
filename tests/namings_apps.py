"""The same small service under each HTTP naming the rules and dashboards read: the kit's default
names, the kit with `EXPORTER_HTTP_METRICS=semconv`, and no kit at all but FastAPI's own
telemetry exported by opentelemetry-exporter-prometheus. Each on a registry of its own."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, make_asgi_app

from exporter.app import instrument
from exporter.config import load_settings

NAMINGS = ("default", "semconv", "fastapi")


def plain_shop(**options: Any) -> FastAPI:
    """/items/{item_id} answers at once, /boom raises (a 500), /slow takes 30 ms."""
    app = FastAPI(**options)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("broken on purpose")

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(0.03)
        return {"ok": True}

    return app


def shop(naming: str) -> FastAPI:
    """The shop publishing its HTTP metrics at /metrics under `naming` (one of NAMINGS)."""
    if naming == "fastapi":
        # FastAPI (0.142+) records the OpenTelemetry HTTP metrics itself once it has an SDK
        # meter provider; the Prometheus reader exposes them on a registry of its own.
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider

        registry = CollectorRegistry()
        provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
        app = plain_shop(telemetry={"meter_provider": provider, "tracing": False})
        app.mount("/metrics", make_asgi_app(registry))
        return app
    app = plain_shop()
    instrument(app, load_settings(log_stdout=False, http_metrics=naming), CollectorRegistry())
    return app
