"""`EXPORTER_HTTP_METRICS=semconv`: the OpenTelemetry HTTP names, labels and buckets, as
FastAPI's own telemetry writes them, from the kit's middleware."""

from __future__ import annotations

import random

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as classic_families

from exporter.app import instrument
from exporter.config import Settings
from exporter.config.defaults import SEMCONV_BUCKETS
from exporter.http.exposition import render
from exporter.http.metrics import HttpCollector, MultiprocessHttpMetrics, http_metrics_for
from exporter.http.semconv import error_type
from tests.asgi import requests
from tests.namings_apps import plain_shop

METHOD_ROUTE = {"http_request_method": "GET", "http_route": "/items/{item_id}"}


class PaymentDeclined(Exception):
    """An app's own exception: its error type carries its module."""


def _app(registry: CollectorRegistry) -> FastAPI:
    app = plain_shop()

    @app.get("/declined")
    async def declined() -> None:
        raise PaymentDeclined()

    @app.get("/busy")
    async def busy() -> JSONResponse:
        return JSONResponse({"busy": True}, status_code=503)

    instrument(app, Settings(http_metrics="semconv", log_stdout=False), registry)
    return app


def test_the_middleware_publishes_the_conventions_names_labels_and_buckets() -> None:
    registry = CollectorRegistry()
    app = _app(registry)
    calls = [("GET", "/items/1"), ("GET", "/items/2"), ("GET", "/boom"), ("GET", "/declined"),
             ("GET", "/busy"), ("GET", "/items/x"), ("PURGE", "/items/3")]
    requests(app, calls, raise_app_exceptions=False)
    get = registry.get_sample_value
    count = "http_server_request_duration_seconds_count"
    assert get(count, {**METHOD_ROUTE, "http_response_status_code": "200"}) == 2
    assert get(count, {**METHOD_ROUTE, "http_response_status_code": "422"}) == 1  # no error
    # A 5xx: the status code as error type; an exception: its class name (builtins bare).
    assert get(count, {"http_request_method": "GET", "http_route": "/busy",
                       "http_response_status_code": "503", "error_type": "503"}) == 1
    assert get(count, {"http_request_method": "GET", "http_route": "/boom",
                       "http_response_status_code": "500", "error_type": "RuntimeError"}) == 1
    assert get(count, {"http_request_method": "GET", "http_route": "/declined",
                       "http_response_status_code": "500",
                       "error_type": f"{__name__}.PaymentDeclined"}) == 1
    assert get("http_server_active_requests", METHOD_ROUTE) == 0
    assert get(count, {**METHOD_ROUTE, "http_request_method": "_OTHER",
                       "http_response_status_code": "405"}) == 1  # as the conventions say
    les = [s.labels["le"] for f in registry.collect() for s in f.samples
           if s.name == "http_server_request_duration_seconds_bucket"
           and s.labels.get("http_response_status_code") == "200"]
    assert les == [*(repr(float(b)) for b in SEMCONV_BUCKETS), "+Inf"]
    assert get("http_requests_total", {"method": "GET", "route": "/items/{item_id}",
                                       "status": "200"}) is None  # only one naming


def test_error_type_is_the_qualified_class_name() -> None:
    assert error_type(RuntimeError()) == "RuntimeError"
    assert error_type(PaymentDeclined()) == f"{__name__}.PaymentDeclined"


def test_histogram_matches_prometheus_client_per_status() -> None:
    ours_registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    ours = HttpCollector(SEMCONV_BUCKETS, ours_registry, "semconv")
    reference = Histogram("http_server_request_duration_seconds", "ref",
                          ("http_request_method", "http_route", "http_response_status_code",
                           "error_type"), buckets=SEMCONV_BUCKETS, registry=reference_registry)
    rng = random.Random(3)
    for value in [rng.expovariate(4.0) for _ in range(3000)] + list(SEMCONV_BUCKETS):
        status = rng.choice((200, 404, 500))
        series = ours.series("GET", "/r")
        series.start()
        series.finish(status, value, "t")
        reference.labels("GET", "/r", str(status), "500" if status == 500 else "").observe(value)

    def samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...],
                                                          float]]:
        return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if v)), s.value)
                for f in registry.collect() for s in f.samples
                if s.name.startswith("http_server_request_duration_seconds_")
                and not s.name.endswith("_created")}

    assert samples(ours_registry) == samples(reference_registry)


def test_rendered_text_says_what_the_samples_say_with_exemplars() -> None:
    registry = CollectorRegistry()
    metrics = HttpCollector(SEMCONV_BUCKETS, registry, "semconv")
    for route in ("/a", "/b"):
        for status in (200, 503):
            series = metrics.series("GET", route)
            series.start()
            series.finish(status, 0.02, "f" * 32)
    metrics.series("GET", "/a").start()  # one in flight
    expected = {(s.name, tuple(sorted(s.labels.items())), s.value)
                for family in metrics.collect() for s in family.samples}
    classic = render(registry, openmetrics=False).decode()
    assert {(s.name, tuple(sorted(s.labels.items())), s.value)
            for f in classic_families(classic) for s in f.samples} == expected
    om = render(registry, openmetrics=True).decode()
    parsed = list(text_string_to_metric_families(om))
    assert {(s.name, tuple(sorted(s.labels.items())), s.value)
            for f in parsed for s in f.samples} == expected
    exemplars = [s.exemplar for f in parsed for s in f.samples if s.exemplar]
    assert exemplars and all(e.labels == {"trace_id": "f" * 32} for e in exemplars)
    assert ("http_server_active_requests", (("http_request_method", "GET"),
                                            ("http_route", "/a")), 1.0) in expected


def test_multiprocess_metric_objects_get_the_conventions_names() -> None:
    registry = CollectorRegistry()
    metrics = MultiprocessHttpMetrics(SEMCONV_BUCKETS, registry, "semconv")
    series = metrics.series("GET", "/r")
    series.start()
    series.finish(502, 0.3, "t")
    get = registry.get_sample_value
    assert get("http_server_request_duration_seconds_count", {
        "http_request_method": "GET", "http_route": "/r",
        "http_response_status_code": "502", "error_type": "502"}) == 1
    assert get("http_server_active_requests", {"http_request_method": "GET",
                                               "http_route": "/r"}) == 0


def test_a_registry_keeps_one_naming() -> None:
    registry = CollectorRegistry()
    http_metrics_for(registry, SEMCONV_BUCKETS, naming="semconv")
    with pytest.raises(ValueError, match="semconv vs default"):
        http_metrics_for(registry, SEMCONV_BUCKETS, naming="default")


def test_the_in_process_history_reads_the_conventions_names() -> None:
    """In the app (no Prometheus), the history and alerts read the same signals from them."""
    from exporter.health.history import History

    registry = CollectorRegistry()
    app = _app(registry)
    now = [0.0]
    history = History(registry, signal_window=4.0, interval=1.0, monotonic=lambda: now[0],
                      clock=lambda: now[0])
    for _ in range(8):  # 10 requests a second, one of them a 500
        requests(app, [("GET", "/items/1")] * 9 + [("GET", "/boom")],
                 raise_app_exceptions=False)
        now[0] += 1.0
        point = history.record()
    assert point.values["http_requests_per_second"] == {(): pytest.approx(10.0)}
    assert point.values["http_error_ratio"] == {(): pytest.approx(0.1)}
    assert 0 < point.values["http_latency_p95_seconds"][()] <= 0.25
