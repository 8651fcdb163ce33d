"""The app `http_overhead.py` serves, in three variants that differ only in HTTP instrumentation.

uvicorn loads one variant per process through a factory (`--factory apps:ours_app`), so each
variant has its own default prometheus registry and nothing leaks between them.
"""

from __future__ import annotations

import gc
import os
from typing import Any

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


def bare_app(telemetry: dict[str, Any] | None = None) -> FastAPI:
    """The uninstrumented app: the baseline every variant is compared with (`telemetry`:
    FastAPI's own telemetry settings, for the OpenTelemetry variants)."""
    _counting_instructions()
    app = FastAPI(title="bench", **({"telemetry": telemetry} if telemetry else {}))
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


def in_app_app() -> FastAPI:
    """`instrument(app, observability=True)`: the status page, the observability API, history,
    probes and health served inside the app, about it (data in a temporary directory)."""
    import tempfile

    from exporter.app import instrument
    from exporter.config import load_settings

    app = bare_app()
    data_dir = tempfile.mkdtemp(prefix="bench-in-app-")
    instrument(app, load_settings(data_dir=data_dir), observability=True)
    return app


def instrumentator_app() -> FastAPI:
    """The same app with prometheus-fastapi-instrumentator's defaults, exposed on /metrics."""
    from prometheus_fastapi_instrumentator import Instrumentator

    app = bare_app()
    Instrumentator().instrument(app).expose(app)
    return app


def everything_app() -> FastAPI:
    """`instrument(app)` plus everything a user runs with it: `setup_logging` to daily files and
    Loki (`BENCH_LOKI_URL`, a local receiver the bench starts), `enable_access_log` and
    `enable_error_capture`; files and the error store under `BENCH_DATA_DIR`. stdout is off:
    the lines go to the files and from there to Loki."""
    from pathlib import Path

    from exporter import enable_access_log, enable_error_capture, instrument, setup_logging
    from exporter.config import load_settings

    base = Path(os.environ["BENCH_DATA_DIR"])
    settings = load_settings(
        log_dir=base / "logs", data_dir=base / "data", loki_url=os.environ["BENCH_LOKI_URL"],
        log_stdout=False,
    )
    app = bare_app()
    instrument(app, settings)
    setup_logging(settings)  # after uvicorn configured its loggers (it imports the app later)
    enable_access_log(app)
    enable_error_capture(app, settings)
    return app


# FastAPI (0.142 and later) records its own telemetry (fastapi.telemetry: a server span per
# request, the HTTP semantic-convention metrics, a log per unhandled exception) as soon as the
# global OpenTelemetry providers are SDK ones; with the API's default providers it skips it per
# request, which the bare app pays. The variants below configure the SDK as FastAPI's docs do.
SPANS_PATH = "/bench/spans"  # answers how many spans the discarding exporter was handed


def _otel_spans(app: FastAPI, ratio: float | None = None) -> None:
    """An SDK TracerProvider, spans batched into an exporter that only counts them; `ratio`:
    sample that share of traces (the SDK's TraceIdRatioBased sampler, parent-based)."""
    from collections.abc import Sequence

    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Discarding(SpanExporter):
        exported = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            Discarding.exported += len(spans)
            return SpanExportResult.SUCCESS

    provider = (TracerProvider() if ratio is None
                else TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio))))
    provider.add_span_processor(BatchSpanProcessor(Discarding()))
    trace.set_tracer_provider(provider)

    @app.get(SPANS_PATH, include_in_schema=False)
    def spans() -> dict[str, int]:
        provider.force_flush()
        return {"exported": Discarding.exported}


def _otel_metrics(app: FastAPI) -> None:
    """An SDK MeterProvider read by opentelemetry-exporter-prometheus, on /metrics."""
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
    from starlette.requests import Request
    from starlette.responses import Response

    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))

    async def exposition(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.add_route("/metrics", exposition, include_in_schema=False)


def _otel(
    spans: bool, metrics: bool, ratio: float | None = None,
    telemetry: dict[str, Any] | None = None,
) -> FastAPI:
    app = bare_app(telemetry)
    if spans:
        _otel_spans(app, ratio)
    if metrics:
        _otel_metrics(app)
    return app


def otel_app() -> FastAPI:
    """FastAPI's own telemetry with the SDK: spans (batched, discarded) and metrics (/metrics)."""
    return _otel(spans=True, metrics=True)


def otel_spans_app() -> FastAPI:
    """FastAPI's own telemetry, spans only."""
    return _otel(spans=True, metrics=False)


def otel_metrics_app() -> FastAPI:
    """FastAPI's own telemetry, metrics only."""
    return _otel(spans=False, metrics=True)


def otel_spans_lean_app() -> FastAPI:
    """FastAPI's own spans without its operation spans (dependencies, endpoint, serialization):
    one server span per request."""
    return _otel(spans=True, metrics=False, telemetry={"operation_spans": False})


SAMPLED = 0.1  # the share of traces the sampled variant keeps


def otel_spans_sampled_app() -> FastAPI:
    """FastAPI's own spans, one trace in ten sampled (TraceIdRatioBased 0.1)."""
    return _otel(spans=True, metrics=False, ratio=SAMPLED)


def ours_otel_spans_app() -> FastAPI:
    """`instrument(app)` in an app whose FastAPI also records its own spans (SDK provider)."""
    app = ours_app()
    _otel_spans(app)
    return app
