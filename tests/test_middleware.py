"""The HTTP middleware: route templates, status and exception counting, timing, trace ids."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, BackgroundTasks, FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, Router

import exporter
from exporter.config import load_settings
from exporter.http import middleware
from exporter.http.routes import UNMATCHED
from tests.asgi import request, requests, serve_in_thread

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def count(registry: CollectorRegistry, route: str, status: str, method: str = "GET") -> float:
    value = registry.get_sample_value(
        "http_requests_total", {"method": method, "route": route, "status": status}
    )
    return value or 0.0


def route_values(registry: CollectorRegistry) -> set[str]:
    return {
        sample.labels["route"]
        for metric in registry.collect()
        if metric.name == "http_requests"
        for sample in metric.samples
        if sample.name == "http_requests_total"
    }


def sub_app() -> FastAPI:
    sub = FastAPI()

    @sub.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"order_id": order_id}

    return sub


def make_app(registry: CollectorRegistry, **settings: object) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/plain")
    def plain() -> dict[str, str | None]:  # sync: runs in the thread pool
        return {"trace_id": exporter.current_trace_id()}

    @app.get("/async-trace")
    async def async_trace() -> dict[str, str | None]:
        return {"trace_id": exporter.current_trace_id()}

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(404, "nope")

    router = APIRouter(prefix="/api")

    @router.get("/users/{user_id}/posts/{post_id}")
    async def post(user_id: str, post_id: int) -> dict[str, str]:
        return {"user": user_id}

    outer = APIRouter(prefix="/v1")
    outer.include_router(router)
    app.include_router(outer)
    app.mount("/shop", sub_app())

    async def deep(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["name"])

    app.mount("/nested", Router(routes=[Mount("/deeper", routes=[Route("/{name}", deep)])]))
    exporter.instrument(app, load_settings(**settings), registry)
    return app


def test_route_templates_resolve_through_routers_and_mounts(registry: CollectorRegistry) -> None:
    app = make_app(registry)
    responses = requests(
        app,
        [
            ("GET", "/items/7"),
            ("GET", "/v1/api/users/ann/posts/3"),
            ("GET", "/shop/orders/42"),
            ("GET", "/nested/deeper/bob"),
            ("GET", "/plain"),
        ],
    )
    assert [r.status_code for r in responses] == [200] * 5
    assert count(registry, "/items/{item_id}", "200") == 1
    assert count(registry, "/v1/api/users/{user_id}/posts/{post_id}", "200") == 1
    assert count(registry, "/shop/orders/{order_id}", "200") == 1
    assert count(registry, "/nested/deeper/{name}", "200") == 1
    assert count(registry, "/plain", "200") == 1


def test_raw_paths_never_become_label_values(registry: CollectorRegistry) -> None:
    app = make_app(registry)
    calls = []
    for i in range(10_000):
        kind = i % 4
        if kind == 0:
            calls.append(("GET", f"/items/{i}"))
        elif kind == 1:
            calls.append(("GET", f"/shop/orders/{i}"))
        elif kind == 2:
            calls.append(("GET", f"/random/{i}/path"))
        else:
            calls.append(("GET", f"/v1/api/users/u{i}/posts/{i}"))
    responses = requests(app, calls)
    assert len(responses) == 10_000
    values = route_values(registry)
    routes_in_app = 4  # the templates the calls can reach
    assert len(values) <= routes_in_app + 1
    assert values == {
        "/items/{item_id}",
        "/shop/orders/{order_id}",
        UNMATCHED,
        "/v1/api/users/{user_id}/posts/{post_id}",
    }
    assert count(registry, UNMATCHED, "404") == 2500


def test_recent_raw_paths_are_remembered_up_to_a_bound(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(middleware, "KNOWN_PATHS", 50)
    app = make_app(registry)
    calls = [("GET", f"/items/{i}") for i in range(120)] + [("GET", "/items/0"), ("GET", "/x")]
    assert [r.status_code for r in requests(app, calls)] == [200] * 121 + [404]
    stack = app.middleware_stack
    assert isinstance(stack, middleware.PrometheusMiddleware)
    assert len(stack._known) == 50  # the oldest paths were forgotten, and relearned when asked
    assert count(registry, "/items/{item_id}", "200") == 121
    assert count(registry, UNMATCHED, "404") == 1


def test_routes_added_after_the_first_request_are_counted_by_template(
    registry: CollectorRegistry,
) -> None:
    app = make_app(registry)
    assert request(app, "GET", "/late/1").status_code == 404

    @app.get("/late/{n}")
    async def late(n: int) -> dict[str, int]:
        return {"n": n}

    assert request(app, "GET", "/late/1").status_code == 200
    assert count(registry, UNMATCHED, "404") == 1
    assert count(registry, "/late/{n}", "200") == 1


def test_status_codes_are_counted(registry: CollectorRegistry) -> None:
    app = make_app(registry)
    responses = requests(
        app,
        [
            ("GET", "/items/1"),
            ("GET", "/missing"),
            ("GET", "/items/notanint"),
            ("POST", "/items/1"),
            ("GET", "/nowhere"),
        ],
    )
    assert [r.status_code for r in responses] == [200, 404, 422, 405, 404]
    assert count(registry, "/items/{item_id}", "200") == 1
    assert count(registry, "/missing", "404") == 1
    assert count(registry, "/items/{item_id}", "422") == 1
    assert count(registry, "/items/{item_id}", "405", method="POST") == 1
    assert count(registry, UNMATCHED, "404") == 1


def test_non_standard_methods_share_other(registry: CollectorRegistry) -> None:
    app = make_app(registry)
    requests(app, [("PURGE", "/items/1"), ("BREW", "/items/2"), ("GET", "/items/3")])
    assert count(registry, "/items/{item_id}", "405", method="OTHER") == 2
    assert count(registry, "/items/{item_id}", "200", method="GET") == 1


def test_excluded_paths_and_templates_are_not_counted(registry: CollectorRegistry) -> None:
    app = make_app(registry, excluded_paths=["/metrics", "/items/{item_id}"])
    requests(app, [("GET", "/metrics"), ("GET", "/items/1"), ("GET", "/plain")])
    assert route_values(registry) == {"/plain"}


def test_a_moved_metrics_path_is_never_counted(registry: CollectorRegistry) -> None:
    app = make_app(registry, metrics_path="/prom", excluded_paths=["/healthz"])
    replies = requests(app, [("GET", "/prom"), ("GET", "/prom"), ("GET", "/plain")])
    assert replies[0].status_code == 200 and "http_requests_total" in replies[1].text
    assert route_values(registry) == {"/plain"}


class Boom(RuntimeError):
    pass


def test_unhandled_exception_counts_500_and_is_reraised_unchanged(
    registry: CollectorRegistry,
) -> None:
    app = FastAPI()
    raised = Boom("kaput")

    @app.get("/fail/{n}")
    async def fail(n: int) -> None:
        raise raised

    exporter.instrument(app, load_settings(), registry)
    with pytest.raises(Boom) as caught:
        request(app, "GET", "/fail/1")
    assert caught.value is raised
    assert count(registry, "/fail/{n}", "500") == 1

    # What the client sees: Starlette's 500, which still carries the trace id.
    response = requests(app, [("GET", "/fail/2")], raise_app_exceptions=False)[0]
    assert response.status_code == 500
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-trace-id"])
    assert count(registry, "/fail/{n}", "500") == 2
    assert (
        registry.get_sample_value(
            "http_requests_in_progress", {"method": "GET", "route": "/fail/{n}"}
        )
        == 0
    )


def test_exception_mid_stream_counts_500(registry: CollectorRegistry) -> None:
    app = FastAPI()

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise Boom("stream broke")

    @app.get("/broken")
    async def endpoint() -> StreamingResponse:
        return StreamingResponse(broken())

    exporter.instrument(app, load_settings(), registry)
    with pytest.raises(Boom):
        request(app, "GET", "/broken")
    assert count(registry, "/broken", "500") == 1
    assert count(registry, "/broken", "200") == 0


def test_trace_id_header_matches_current_trace_id(registry: CollectorRegistry) -> None:
    app = make_app(registry)
    generated = request(app, "GET", "/plain")
    assert generated.headers["x-trace-id"] == generated.json()["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated.json()["trace_id"])

    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    from_parent = request(app, "GET", "/async-trace", headers={"traceparent": parent})
    assert from_parent.json()["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert from_parent.headers["x-trace-id"] == "0af7651916cd43dd8448eb211c80319c"

    bad_parent = request(
        app, "GET", "/plain", headers={"traceparent": "00-bad", "x-request-id": "r-9"}
    )
    assert bad_parent.json()["trace_id"] == "r-9"
    assert exporter.current_trace_id() is None  # nothing leaks out of the request


def test_exemplar_carries_the_trace_id(registry: CollectorRegistry) -> None:
    app = make_app(registry)
    parent = "00-11111111111111111111111111111111-2222222222222222-01"
    before = time.time()
    request(app, "GET", "/items/5", headers={"traceparent": parent})
    after = time.time()
    scrape = request(app, "GET", "/metrics", headers={"accept": "application/openmetrics-text"})
    assert scrape.headers["content-type"].startswith("application/openmetrics-text")
    line = next(
        line
        for line in scrape.text.splitlines()
        if line.startswith("http_request_duration_seconds_bucket")
        and "/items/{item_id}" in line
        and "#" in line
    )
    assert 'trace_id="11111111111111111111111111111111"' in line
    # The exemplar's timestamp is the wall-clock time the response completed (kept as a
    # perf_counter() reading, converted at the scrape).
    stamp = float(line.rsplit(" ", 1)[1])
    assert before - 0.01 <= stamp <= after + 0.01
    assert scrape.text.rstrip().endswith("# EOF")

    classic = request(app, "GET", "/metrics")
    assert classic.headers["content-type"].startswith("text/plain")
    assert "trace_id" not in classic.text
    assert (
        'http_requests_total{method="GET",route="/items/{item_id}",status="200"} 1.0'
        in classic.text
    )


def test_metrics_are_gzipped_when_asked(registry: CollectorRegistry) -> None:
    app = make_app(registry)
    response = request(app, "GET", "/metrics", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert "http_request_duration_seconds" in response.text or "python_info" in response.text


def test_custom_registry_is_honoured_by_every_metric(registry: CollectorRegistry) -> None:
    app = FastAPI()

    @app.get("/only-on-custom-registry")
    async def endpoint() -> dict[str, bool]:
        return {"ok": True}

    exporter.instrument(app, load_settings(), registry)
    request(app, "GET", "/only-on-custom-registry")
    assert count(registry, "/only-on-custom-registry", "200") == 1
    assert count(REGISTRY, "/only-on-custom-registry", "200") == 0
    names = {metric.name for metric in registry.collect()}
    assert {
        "http_requests",
        "http_request_duration_seconds",
        "http_requests_in_progress",
        "system_cpu_usage_ratio",
        "system_memory_usage_ratio",
        "system_disk_usage_ratio",
        "process_cpu_seconds",
        "python_info",
    } <= names


def test_two_apps_on_one_registry_share_the_metrics(registry: CollectorRegistry) -> None:
    first, second = make_app(registry), make_app(registry)
    request(first, "GET", "/items/1")
    request(second, "GET", "/items/2")
    assert count(registry, "/items/{item_id}", "200") == 2


def test_instrumenting_a_running_app_is_refused(registry: CollectorRegistry) -> None:
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hi"))])
    request(app, "GET", "/")  # builds the middleware stack
    with pytest.raises(RuntimeError, match="before the app starts"):
        exporter.instrument(app, load_settings(), registry)


def test_streaming_is_timed_to_the_last_byte_and_background_tasks_are_not(
    registry: CollectorRegistry,
) -> None:
    app = FastAPI()
    background_done: list[float] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(0.2)
            yield b"chunk\n"

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/plain")

    def slow_cleanup() -> None:
        time.sleep(1.0)
        background_done.append(time.monotonic())

    @app.get("/with-background")
    async def with_background(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(slow_cleanup)
        return {"ok": True}

    exporter.instrument(app, load_settings(), registry)
    with serve_in_thread(app) as url:
        with httpx.stream("GET", url + "/stream", timeout=10) as response:
            body = b"".join(response.iter_bytes())
        assert body == b"chunk\n" * 3
        started = time.monotonic()
        assert httpx.get(url + "/with-background", timeout=10).status_code == 200
        deadline = time.monotonic() + 5
        while not background_done and time.monotonic() < deadline:
            time.sleep(0.05)
    assert background_done and background_done[0] - started >= 0.9  # the task did run ~1 s

    def duration_sum(route: str) -> float:
        value = registry.get_sample_value(
            "http_request_duration_seconds_sum", {"method": "GET", "route": route}
        )
        assert value is not None
        return value

    # Three 0.2 s sleeps: uvloop's timers keep milliseconds of a cached loop clock, so each
    # may end up to ~1 ms early (CI read 0.59993); stopped at the first byte it would be ~0.
    assert 0.59 <= duration_sum("/stream") < 1.5
    assert duration_sum("/with-background") < 0.5


def test_observers_see_each_request_and_the_exception_behind_a_500(
    registry: CollectorRegistry,
) -> None:
    from exporter.http.middleware import CompletedRequest
    from exporter.runtime import runtime_of

    app = FastAPI()
    raised = Boom("observed")

    @app.get("/fail")
    async def fail() -> None:
        raise raised

    @app.get("/fine/{n}")
    async def fine(n: int) -> dict[str, int]:
        return {"n": n}

    exporter.instrument(app, load_settings(), registry)
    seen: list[CompletedRequest] = []
    state = runtime_of(app)
    assert state is not None

    def broken_observer(done: CompletedRequest) -> None:
        raise RuntimeError("observer bug")

    state.add_observer(seen.append)
    state.add_observer(broken_observer)  # must not break requests nor hide the others
    responses = requests(
        app, [("GET", "/fine/1"), ("GET", "/fail")], raise_app_exceptions=False,
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    assert [r.status_code for r in responses] == [200, 500]
    assert [(d.route, d.status, d.exception) for d in seen] == [
        ("/fine/{n}", 200, None), ("/fail", 500, raised),
    ]
    assert seen[0].path == "/fine/1" and seen[0].duration > 0
    assert {d.trace_id for d in seen} == {"0af7651916cd43dd8448eb211c80319c"}


def test_the_servers_exception_log_line_carries_the_requests_trace_id(
    registry: CollectorRegistry,
) -> None:
    app = FastAPI()

    @app.get("/fail")
    async def fail() -> None:
        raise Boom("kaput")

    exporter.instrument(app, load_settings(), registry)
    seen: list[tuple[str, str | None]] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:  # what a formatter would read
            seen.append((record.getMessage(), exporter.current_trace_id()))

    server_log = logging.getLogger("uvicorn.error")
    recorder = Recorder()
    server_log.addHandler(recorder)
    try:
        with serve_in_thread(app) as url:
            reply = httpx.get(url + "/fail", headers={"traceparent": TRACEPARENT})
        assert reply.status_code == 500
        assert reply.headers["x-trace-id"] == TRACE_ID
        logged = [trace for message, trace in seen if "Exception in ASGI application" in message]
        assert logged == [TRACE_ID]
    finally:
        server_log.removeHandler(recorder)
