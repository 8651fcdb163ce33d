"""Capturing errors from a real instrumented app: unhandled, logged and explicit."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

import exporter
from exporter import enable_error_capture, instrument, load_settings
from exporter.errors.capture import ErrorCapture
from tests.asgi import serve_in_process
from tests.conftest import require_binary

SECRETS = ("hunter2", "s3cr3t-cookie", "tok-4f9a8b7c", "Bearer abcdef123456", "pg-pass-77")


class PaymentDeclined(Exception):
    """The bug the tests raise from two routes."""


def charge(amount: int) -> None:
    raise PaymentDeclined(f"card declined for amount {amount}")


def build(tmp_path: Path, registry: CollectorRegistry) -> tuple[FastAPI, ErrorCapture]:
    settings = load_settings(data_dir=tmp_path / "data", environment="test", release="9.9.9")
    app = FastAPI()

    # One handler behind two routes: the same bug, reached two ways.
    @app.get("/v1/pay/{amount}")
    @app.get("/v2/pay/{amount}")
    async def pay(amount: int) -> dict[str, int]:
        charge(amount)
        return {"amount": amount}

    @app.get("/divide/{n}")
    async def divide(n: int) -> dict[str, float]:
        return {"result": 1 / n}

    @app.post("/login")
    async def login(request: Request) -> dict[str, bool]:
        body = await request.json()
        raise RuntimeError(f"login failed: password={body['password']} dsn={body['dsn']}")

    @app.get("/logged")
    async def logged() -> dict[str, bool]:
        try:
            {}["missing"]
        except KeyError:
            logging.getLogger("shop.orders").exception("lookup failed token=tok-4f9a8b7c")
        return {"ok": False}

    @app.get("/explicit")
    async def explicit() -> dict[str, str | None]:
        try:
            raise TimeoutError("inventory timed out after 30 s")
        except TimeoutError as exc:
            group = exporter.capture_exception(exc, order=17, api_token="pg-pass-77")
        return {"group": group}

    instrument(app, settings, registry)
    return app, enable_error_capture(app, settings)


@pytest.fixture
def app_and_capture(
    tmp_path: Path, registry: CollectorRegistry
) -> Iterator[tuple[FastAPI, ErrorCapture]]:
    app, capture = build(tmp_path, registry)
    yield app, capture
    capture.stop()


def _groups(capture: ErrorCapture) -> list[dict[str, object]]:
    assert capture.writer is not None and capture.store is not None
    assert capture.writer.flush()
    return capture.store.groups(limit=500)[1]


def test_the_same_error_from_two_routes_makes_one_group_of_100(
    app_and_capture: tuple[FastAPI, ErrorCapture], registry: CollectorRegistry
) -> None:
    app, capture = app_and_capture
    with serve_in_process(app) as client:
        for i in range(100):
            response = client.get(f"/v{1 + i % 2}/pay/{i}")
            assert response.status_code == 500
        groups = _groups(capture)
        assert len(groups) == 1
        group = groups[0]
        assert (group["type"], group["count"]) == (f"{__name__}.PaymentDeclined", 100)
        assert capture.store is not None
        detail = capture.store.group(str(group["id"]))
        assert detail is not None
        assert detail["routes"] == {"/v1/pay/{amount}": 50, "/v2/pay/{amount}": 50}
        sample = detail["samples"][0]
        assert sample["environment"] == "test" and sample["release"] == "9.9.9"
        assert sample["method"] == "GET" and len(sample["trace_id"]) == 32
        in_app = [frame["function"] for frame in sample["stack"] if frame["in_app"]]
        assert in_app[-2:] == ["build.<locals>.pay", "charge"]
    assert registry.get_sample_value(
        "exceptions_total", {"exception_type": f"{__name__}.PaymentDeclined"}) == 100


def test_two_different_bugs_make_two_groups(
    app_and_capture: tuple[FastAPI, ErrorCapture],
) -> None:
    app, capture = app_and_capture
    with serve_in_process(app) as client:
        client.get("/v1/pay/5")
        client.get("/divide/0")
        client.get("/divide/0")
        groups = {group["type"]: group["count"] for group in _groups(capture)}
    assert groups == {f"{__name__}.PaymentDeclined": 1, "ZeroDivisionError": 2}


def test_the_trace_id_of_the_response_is_on_the_sample(
    app_and_capture: tuple[FastAPI, ErrorCapture],
) -> None:
    app, capture = app_and_capture
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with serve_in_process(app) as client:
        response = client.get(
            "/divide/0", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
        assert response.headers["x-trace-id"] == trace_id
        group = _groups(capture)[0]
    assert capture.store is not None
    detail = capture.store.group(str(group["id"]))
    assert detail is not None and detail["samples"][0]["trace_id"] == trace_id


def test_logged_and_explicit_exceptions_are_captured_once_each(
    app_and_capture: tuple[FastAPI, ErrorCapture],
) -> None:
    app, capture = app_and_capture
    with serve_in_process(app) as client:
        client.get("/logged")
        reply = client.get("/explicit").json()
        groups = {group["type"]: group for group in _groups(capture)}
    assert set(groups) == {"KeyError", "TimeoutError"}
    assert groups["KeyError"]["count"] == 1
    assert reply["group"] == groups["TimeoutError"]["id"]
    assert capture.store is not None
    logged = capture.store.group(str(groups["KeyError"]["id"]))
    assert logged is not None
    assert logged["samples"][0]["context"] == {
        "logger": "shop.orders", "log_message": "lookup failed token=[Filtered]"}
    explicit = capture.store.group(str(reply["group"]))
    assert explicit is not None
    assert explicit["samples"][0]["context"] == {"order": 17, "api_token": "[Filtered]"}


def test_an_unhandled_exception_logged_by_the_server_is_not_counted_twice(
    app_and_capture: tuple[FastAPI, ErrorCapture],
) -> None:
    app, capture = app_and_capture
    with serve_in_process(app):
        try:
            charge(3)
        except PaymentDeclined as exc:
            capture.capture(exc)
            # What uvicorn does with an exception that escaped the app.
            logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=exc)
        assert [group["count"] for group in _groups(capture)] == [1]


def test_a_task_failure_celery_logs_in_billiards_wrapper_is_not_a_second_group(
    app_and_capture: tuple[FastAPI, ErrorCapture],
) -> None:
    einfo = pytest.importorskip("billiard.einfo")
    _app, capture = app_and_capture
    try:
        charge(4)
    except PaymentDeclined:
        info = einfo.ExceptionInfo()
    capture.capture(info.exception.exc, route="tasks.charge", method="TASK")  # task_failure
    # What Celery's worker logs next ("Task handler raised error").
    logging.getLogger("celery.worker.request").error(
        "Task handler raised error: %r", info.exception.exc, exc_info=info.exc_info)
    [group] = _groups(capture)
    assert (group["type"].rsplit(".", 1)[-1], group["count"]) == ("PaymentDeclined", 1)
    assert capture.store is not None
    assert (capture.store.group(str(group["id"])) or {})["routes"] == {"tasks.charge": 1}


def test_planted_secrets_never_reach_the_store(
    app_and_capture: tuple[FastAPI, ErrorCapture],
) -> None:
    app, capture = app_and_capture
    with serve_in_process(app) as client:
        response = client.post(
            "/login?password=hunter2",
            json={"password": "hunter2", "dsn": "postgresql://shop:pg-pass-77@db/shop",
                  "token": "tok-4f9a8b7c"},
            headers={"Authorization": "Bearer abcdef123456", "Cookie": "session=s3cr3t-cookie"},
        )
        assert response.status_code == 500
        client.get("/logged")
        client.get("/explicit")
        _groups(capture)
    assert capture.store is not None
    capture.store.close()
    raw = (capture.store.path.read_bytes()
           + capture.store.path.with_name("errors.sqlite3-wal").read_bytes()
           if capture.store.path.with_name("errors.sqlite3-wal").exists()
           else capture.store.path.read_bytes())
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
    assert b"login failed: password=[Filtered]" in raw


def test_exception_type_labels_are_bounded(tmp_path: Path, registry: CollectorRegistry) -> None:
    _app, capture = build(tmp_path, registry)
    capture.metrics.max_types = 3
    try:
        for index in range(6):
            kind = type(f"Kind{index}", (Exception,), {})
            try:
                raise kind("x")
            except Exception as exc:
                capture.capture(exc)
        types = {
            sample.labels["exception_type"]
            for metric in registry.collect() if metric.name == "exceptions"
            for sample in metric.samples if sample.name == "exceptions_total"
        }
        assert len(types) == 4 and "other" in types
        assert registry.get_sample_value("exceptions_total", {"exception_type": "other"}) == 3
    finally:
        capture.stop()


def test_enabling_twice_returns_the_same_capture(
    app_and_capture: tuple[FastAPI, ErrorCapture],
) -> None:
    app, capture = app_and_capture
    assert enable_error_capture(app) is capture


def test_enable_needs_instrument_first(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="instrument"):
        enable_error_capture(FastAPI(), load_settings(data_dir=tmp_path))


def test_the_error_metrics_pass_promtool(
    app_and_capture: tuple[FastAPI, ErrorCapture], registry: CollectorRegistry
) -> None:
    promtool = require_binary("promtool", "prometheus")
    app, _ = app_and_capture
    with serve_in_process(app) as client:
        client.get("/divide/0")
        scrape = client.get("/metrics").text
    assert 'exceptions_total{exception_type="ZeroDivisionError"} 1.0' in scrape
    assert 'errors_store_dropped_total{reason="write_failed"} 0.0' in scrape
    checked = subprocess.run([promtool, "check", "metrics"], input=scrape, text=True,
                             capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_writes_the_store_refuses_are_counted(
    app_and_capture: tuple[FastAPI, ErrorCapture], registry: CollectorRegistry
) -> None:
    _app, capture = app_and_capture
    assert capture.store is not None and capture.writer is not None
    capture.store.close()  # as a full disk or a corrupt file would
    for _ in range(5):
        try:
            charge(1)
        except PaymentDeclined as exc:
            capture.capture(exc)
    assert capture.writer.flush()
    assert registry.get_sample_value(
        "errors_store_dropped_total", {"reason": "write_failed"}) == 5
    assert registry.get_sample_value(
        "errors_store_dropped_total", {"reason": "queue_full"}) == 0


def test_a_large_context_is_cut_to_about_8_kib_on_the_sample(
    app_and_capture: tuple[FastAPI, ErrorCapture],
) -> None:
    import json

    _app, capture = app_and_capture
    try:
        charge(2)
    except PaymentDeclined as exc:
        group = capture.capture(exc, context={
            "order": 17, "payload": "x" * 100_000, **{f"k{n}": "v" * 150 for n in range(200)}})
    assert group is not None and capture.store is not None
    _groups(capture)
    detail = capture.store.group(group)
    assert detail is not None
    context = detail["samples"][0]["context"]
    assert len(json.dumps(context)) <= 8192
    assert context["order"] == 17 and context["payload"].startswith("x" * 200)
    assert context["_truncated"].endswith("more keys left out")


def test_logged_and_reported_exceptions_carry_their_requests_route_and_method(
    app_and_capture: tuple[FastAPI, ErrorCapture],
) -> None:
    app, capture = app_and_capture
    with serve_in_process(app) as client:
        client.get("/logged")
        group = client.get("/explicit").json()["group"]
        try:
            charge(5)
        except PaymentDeclined as exc:
            outside = capture.capture(exc)  # outside any request: none
        groups = {g["type"]: g for g in _groups(capture)}
    assert capture.store is not None
    for kind, route in (("KeyError", "/logged"), ("TimeoutError", "/explicit")):
        detail = capture.store.group(str(groups[kind]["id"]))
        assert detail is not None
        assert (detail["samples"][0]["route"], detail["samples"][0]["method"]) == (route, "GET")
        assert detail["routes"] == {route: 1}
    assert groups["TimeoutError"]["id"] == group
    detail = capture.store.group(str(outside))
    assert detail is not None
    assert (detail["samples"][0]["route"], detail["samples"][0]["method"]) == (None, None)


def test_enabling_on_an_app_that_already_serves_still_captures(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    app = FastAPI()

    @app.get("/late")
    async def late() -> dict[str, str | None]:
        try:
            raise LookupError("gone")
        except LookupError as exc:
            return {"group": exporter.capture_exception(exc)}

    instrument(app, settings, registry)
    with serve_in_process(app, lifespan=False) as client:
        client.get("/docs")  # the middleware stack is built
        capture = enable_error_capture(app, settings)
        try:
            group = client.get("/late").json()["group"]
            assert group is not None
        finally:
            capture.stop()
    assert capture.store is not None
    detail = capture.store.group(str(group))
    assert detail is not None  # and it knows the request it came from
    assert (detail["samples"][0]["route"], detail["samples"][0]["method"]) == ("/late", "GET")
