"""One trace id: with an OpenTelemetry SDK recording the request (FastAPI's own server span), the
kit's ids are that span's everywhere; without one, the kit's own id is. Everywhere means the
`X-Trace-Id` header, the access and app log lines, the exemplar, the error store and the Sentry
event (its trace context and its tag), for async and sync endpoints and an unhandled exception,
with and without an incoming `traceparent`.

The SDK's provider is handed to FastAPI (`telemetry={"tracer_provider": ...}`): the process's
global provider stays the API's proxy, so nothing leaks into other tests. The global-provider
path runs in a subprocess.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    use_span,
)
from prometheus_client import CollectorRegistry

import exporter
from exporter import enable_access_log, instrument, load_settings, setup_logging
from exporter.errors.capture import enable_error_capture
from exporter.errors.sentry import shutdown_sentry
from exporter.http.middleware import PrometheusMiddleware
from exporter.http.otel import trace_from_span
from exporter.http.trace import OTEL_SOURCE, _current, current_trace, trace_from_headers
from tests.asgi import serve_in_process
from tests.sentry_receiver import SentryReceiver

ROOT = Path(__file__).resolve().parent.parent
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
# Each endpoint reports one exception: logged inside the endpoint, or unhandled (a 500).
PATHS = {"/async/logged": 200, "/sync/logged": 200, "/async/boom": 500, "/sync/boom": 500}


def add_endpoints(app: FastAPI) -> None:
    log = logging.getLogger("shop")

    @app.get("/async/logged")
    async def async_logged() -> dict[str, bool]:
        log.info("async endpoint")
        try:
            {}["missing"]
        except KeyError:
            log.exception("async lookup failed")
        return {"ok": True}

    @app.get("/sync/logged")
    def sync_logged() -> dict[str, bool]:
        log.info("sync endpoint")
        try:
            [][1]
        except IndexError:
            log.exception("sync lookup failed")
        return {"ok": True}

    @app.get("/async/boom")
    async def async_boom() -> None:
        log.info("async endpoint")
        raise ValueError("async boom")

    @app.get("/sync/boom")
    def sync_boom() -> None:
        log.info("sync endpoint")
        raise LookupError("sync boom")

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}


@dataclass
class Seen:
    """What every signal of one request said about its trace."""

    header: str
    access: dict[str, Any]
    app_lines: list[dict[str, Any]]  # logged by the endpoint
    exemplars: set[str]
    stored: list[str | None]
    event: dict[str, Any]
    envelope_trace: dict[str, Any] | None
    spans: list[ReadableSpan]


def _lines(folder: Path, pattern: str) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob(pattern))
            for line in path.read_text().splitlines()]


def _exemplar_trace_ids(scrape: str, route: str) -> set[str]:
    found = set()
    for line in scrape.splitlines():
        if line.startswith("http_request_duration_seconds_bucket") and route in line \
                and "#" in line:
            found.add(line.split('trace_id="', 1)[1].split('"', 1)[0])
    return found


@pytest.fixture
def serve_once(
    tmp_path: Path, registry: CollectorRegistry, sentry_endpoint: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """`serve_once(path, headers, provider)`: one request to a fully observed app; what it left."""
    monkeypatch.setenv("EXPORTER_SENTRY_DSN", sentry_endpoint.dsn)
    settings = load_settings(data_dir=tmp_path / "data", log_dir=tmp_path / "logs",
                             log_stdout=False, environment="test", release="9.9.9")
    sinks_made: list[Any] = []
    captures: list[Any] = []

    def serve(path: str, headers: dict[str, str], provider: TracerProvider | None) -> Seen:
        spans = InMemorySpanExporter()
        if provider is not None:
            provider.add_span_processor(SimpleSpanProcessor(spans))
        app = FastAPI(telemetry={"tracer_provider": provider}) if provider else FastAPI()
        add_endpoints(app)
        sinks = setup_logging(settings, registry)
        sinks_made.append(sinks)
        instrument(app, settings, registry)
        enable_access_log(app)
        capture = enable_error_capture(app, settings)
        captures.append(capture)
        assert capture.sentry_started and capture.store is not None
        with serve_in_process(app) as client:
            response = client.get(path, headers=headers)
            assert response.status_code == PATHS[path]
            scrape = client.get("/metrics", headers={"accept": "application/openmetrics-text"})
        (event,) = sentry_endpoint.wait_for_events(1)
        assert capture.writer is not None
        capture.writer.flush()
        assert sinks.files.flush()
        (group,) = capture.store.groups()[1]
        detail = capture.store.group(group["id"]) or {}
        (envelope,) = [e for e in sentry_endpoint.envelopes
                       if any(h["type"] == "event" for h, _ in e.items)]
        logs = tmp_path / "logs"
        (access,) = _lines(logs, "access_*.log")
        app_lines = [d for d in _lines(logs, "app_*.log") if d["logger"] == "shop"]
        assert app_lines
        return Seen(response.headers["x-trace-id"], access, app_lines,
                    _exemplar_trace_ids(scrape.text, path), [s["trace_id"] for s in
                                                            detail["samples"]],
                    event, envelope.header.get("trace"), list(spans.get_finished_spans()))

    try:
        yield serve
    finally:
        for capture in captures:
            capture.stop()
        for sinks in sinks_made:
            sinks.close()
        shutdown_sentry()


def _hex(number: int, digits: int) -> str:
    return format(number, f"0{digits}x")


@pytest.mark.parametrize("incoming", [False, True], ids=["new-trace", "traceparent"])
@pytest.mark.parametrize("path", sorted(PATHS))
def test_with_fastapis_spans_every_signal_carries_the_span_trace(
    serve_once: Any, path: str, incoming: bool
) -> None:
    seen: Seen = serve_once(path, {"traceparent": TRACEPARENT} if incoming else {},
                            TracerProvider())
    (server,) = [s for s in seen.spans
                 if s.kind is SpanKind.SERVER and (s.attributes or {}).get("url.path") == path]
    trace_id, server_span = _hex(server.context.trace_id, 32), _hex(server.context.span_id, 16)
    spans = [s for s in seen.spans if _hex(s.context.trace_id, 32) == trace_id]
    assert len(spans) > 1  # FastAPI's endpoint span and the others, in the server span's trace
    if incoming:  # FastAPI's span continued the caller's trace, and so did we
        assert trace_id == CALLER_TRACE
        assert server.parent is not None and _hex(server.parent.span_id, 16) == CALLER_SPAN
    span_ids = {_hex(s.context.span_id, 16) for s in spans}
    assert seen.header == trace_id
    assert (seen.access["trace_id"], seen.access["span_id"]) == (trace_id, server_span)
    # A line logged inside the endpoint carries the span current there (FastAPI's endpoint span).
    for line in seen.app_lines:
        assert line["trace_id"] == trace_id
        assert line["span_id"] in span_ids - {server_span}
    assert seen.exemplars == {trace_id}
    assert seen.stored == [trace_id]
    assert seen.event["tags"]["trace_id"] == trace_id
    assert seen.event["contexts"]["trace"]["trace_id"] == trace_id
    assert seen.event["contexts"]["trace"]["span_id"] in span_ids
    if PATHS[path] == 500:  # reported once the request ended: the server span's
        assert seen.event["contexts"]["trace"]["span_id"] == server_span
    assert seen.envelope_trace is not None and seen.envelope_trace["trace_id"] == trace_id


@pytest.mark.parametrize("incoming", [False, True], ids=["new-trace", "traceparent"])
@pytest.mark.parametrize("path", sorted(PATHS))
def test_without_an_sdk_every_signal_carries_the_kits_own_trace(
    serve_once: Any, path: str, incoming: bool
) -> None:
    seen: Seen = serve_once(path, {"traceparent": TRACEPARENT} if incoming else {}, None)
    assert seen.spans == []
    trace_id, span_id = seen.access["trace_id"], seen.access["span_id"]
    if incoming:
        assert trace_id == CALLER_TRACE and span_id != CALLER_SPAN
    assert seen.header == trace_id
    for line in seen.app_lines:
        assert (line["trace_id"], line["span_id"]) == (trace_id, span_id)
    assert seen.exemplars == {trace_id}
    assert seen.stored == [trace_id]
    # Sentry's own trace context is ours, not only the tag.
    assert seen.event["tags"]["trace_id"] == trace_id
    assert seen.event["contexts"]["trace"]["trace_id"] == trace_id
    assert seen.event["contexts"]["trace"]["span_id"] == span_id
    assert seen.envelope_trace is not None and seen.envelope_trace["trace_id"] == trace_id


def test_without_an_sdk_the_middleware_keeps_to_the_headers(registry: CollectorRegistry) -> None:
    app = FastAPI()
    add_endpoints(app)
    instrument(app, load_settings(), registry)
    with serve_in_process(app) as client:
        first = client.get("/health")
        second = client.get("/health", headers={"traceparent": TRACEPARENT})
    assert first.headers["x-trace-id"] != second.headers["x-trace-id"] == CALLER_TRACE
    middleware = app.middleware_stack
    assert isinstance(middleware, PrometheusMiddleware)
    # Decided at the first request: no OpenTelemetry call on any request after it.
    assert middleware._trace_of is trace_from_headers


def test_a_request_fastapi_does_not_trace_keeps_the_kits_own_id(
    registry: CollectorRegistry,
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = FastAPI(telemetry={"tracer_provider": provider,
                             "exclude": lambda scope: scope["path"] == "/health"})
    add_endpoints(app)
    instrument(app, load_settings(), registry)
    with serve_in_process(app) as client:
        traced = client.get("/async/logged")
        excluded = client.get("/health", headers={"traceparent": TRACEPARENT})
        fresh = client.get("/health")
    (server,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert traced.headers["x-trace-id"] == _hex(server.context.trace_id, 32)
    assert excluded.headers["x-trace-id"] == CALLER_TRACE
    assert len(fresh.headers["x-trace-id"]) == 32
    assert fresh.headers["x-trace-id"] not in (CALLER_TRACE, traced.headers["x-trace-id"])


_GLOBAL_PROVIDER = """
import json
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from exporter import current_trace, instrument, load_settings
from tests.asgi import serve_in_process

spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
app = FastAPI()
seen = {}

@app.get("/work")
def work():
    with trace.get_tracer("shop").start_as_current_span("inner") as inner:
        seen["inner"] = (current_trace().span_id, format(inner.get_span_context().span_id, "016x"))
    return {}

instrument(app, load_settings(), CollectorRegistry())
with serve_in_process(app) as client:
    header = client.get("/work").headers["x-trace-id"]
print(json.dumps({"header": header, "inner": seen["inner"],
                  "traces": sorted({format(s.context.trace_id, "032x")
                                    for s in spans.get_finished_spans()})}))
"""


def test_a_global_sdk_provider_is_found_too() -> None:
    # The global provider can be set once per process: this runs in a process of its own.
    done = subprocess.run([sys.executable, "-c", _GLOBAL_PROVIDER], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["traces"] == [result["header"]]
    # A span of the app's own inside the request is the one its records point at.
    assert result["inner"][0] == result["inner"][1]


def test_records_read_the_span_current_when_they_are_made() -> None:
    tracer = TracerProvider().get_tracer("shop")
    with tracer.start_as_current_span("server") as server:
        request = trace_from_span([], "/r", "GET")
        token = _current.set(request)
        try:
            assert current_trace() is request  # the server span itself: the request's ids
            with tracer.start_as_current_span("endpoint") as endpoint:
                inner = current_trace()
                assert inner is not None and current_trace() is inner
                assert inner.span_id == _hex(endpoint.get_span_context().span_id, 16)
                assert inner.parent_span_id == request.span_id
                assert (inner.trace_id, inner.route, inner.method) == (
                    request.trace_id, "/r", "GET")
            assert current_trace() is request
        finally:
            _current.reset(token)
    assert request.trace_id == _hex(server.get_span_context().trace_id, 32)
    assert request.source == OTEL_SOURCE


def test_a_caller_context_without_a_span_of_ours_is_continued_under_our_own_span_id() -> None:
    caller = SpanContext(int(CALLER_TRACE, 16), int(CALLER_SPAN, 16), is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with use_span(NonRecordingSpan(caller)):
        found = trace_from_span([], "/r", "GET")
    assert (found.trace_id, found.parent_span_id, found.source) == (
        CALLER_TRACE, CALLER_SPAN, "traceparent")
    assert found.span_id != CALLER_SPAN
    # No valid span at all: the headers decide, as without an SDK.
    assert trace_from_span([(b"traceparent", TRACEPARENT.encode())]).trace_id == CALLER_TRACE


@pytest.mark.parametrize("with_sdk", [False, True], ids=["no-sdk", "sdk"])
def test_an_event_the_app_sends_to_sentry_itself_gets_the_requests_trace(
    tmp_path: Path, registry: CollectorRegistry, sentry_endpoint: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch, with_sdk: bool,
) -> None:
    monkeypatch.setenv("EXPORTER_SENTRY_DSN", sentry_endpoint.dsn)
    settings = load_settings(data_dir=tmp_path / "data", environment="test")
    app = FastAPI(telemetry={"tracer_provider": TracerProvider()}) if with_sdk else FastAPI()

    @app.get("/direct")
    async def direct() -> dict[str, str | None]:
        sentry_sdk.capture_message("sent by the app itself")
        return {"trace_id": exporter.current_trace_id(), "span_id": exporter.current_span_id()}

    instrument(app, settings, registry)
    capture = enable_error_capture(app, settings)
    try:
        with serve_in_process(app) as client:
            reply = client.get("/direct", headers={"traceparent": TRACEPARENT})
        (event,) = sentry_endpoint.wait_for_events(1)
    finally:
        capture.stop()
        shutdown_sentry()
    ids = reply.json()
    assert ids["trace_id"] == reply.headers["x-trace-id"] == CALLER_TRACE
    assert event["tags"]["trace_id"] == CALLER_TRACE
    assert (event["contexts"]["trace"]["trace_id"], event["contexts"]["trace"]["span_id"]) == (
        CALLER_TRACE, ids["span_id"])
    (envelope,) = sentry_endpoint.envelopes
    assert envelope.header["trace"]["trace_id"] == CALLER_TRACE
