"""Events sentry-sdk's transport could not deliver: counted by reason, and the latest failure
kept for health until an event is delivered. sentry-sdk's real transport, a real endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sentry_sdk
from prometheus_client import CollectorRegistry

from exporter.app import instrument
from exporter.config import load_settings
from exporter.errors.capture import ErrorCapture
from exporter.errors.sentry import DROP_REASONS, sentry_delivery
from exporter.errors.sentry_transport import DELIVERY_REASONS, DeliveryLog, transport_class
from exporter.health.sentry_check import SENTRY_FAILURE_MEMORY, sentry_check
from tests.asgi import serve_in_process
from tests.conftest import free_port, wait_for
from tests.sentry_receiver import SentryReceiver
from tests.test_errors_capture import build


@pytest.fixture
def start(
    tmp_path: Path, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], tuple[object, ErrorCapture]]]:
    """Builds the test app with error capture and Sentry at `dsn`; stops it afterwards."""
    started: list[ErrorCapture] = []

    def with_dsn(dsn: str) -> tuple[object, ErrorCapture]:
        monkeypatch.setenv("EXPORTER_SENTRY_DSN", dsn)
        app, capture = build(tmp_path, registry)
        assert capture.sentry_started
        started.append(capture)
        return app, capture

    yield with_dsn
    for capture in started:
        capture.stop()


def dropped(registry: CollectorRegistry) -> dict[str, float]:
    """errors_sentry_dropped_total by reason, the reasons that are not 0."""
    counts = {reason: registry.get_sample_value("errors_sentry_dropped_total",
                                                {"reason": reason}) for reason in DROP_REASONS}
    return {reason: value for reason, value in counts.items() if value}


def test_every_reason_is_present_at_zero_once_sentry_is_on(
    start: Callable[[str], tuple[object, ErrorCapture]], sentry_endpoint: SentryReceiver,
    registry: CollectorRegistry,
) -> None:
    start(sentry_endpoint.dsn)
    for reason in DROP_REASONS:
        assert registry.get_sample_value("errors_sentry_dropped_total", {"reason": reason}) == 0
    assert set(DELIVERY_REASONS) <= set(DROP_REASONS)
    assert sentry_delivery() is None


def test_a_5xx_from_sentry_is_counted_and_lasts_until_an_event_is_delivered(
    start: Callable[[str], tuple[object, ErrorCapture]], sentry_endpoint: SentryReceiver,
    registry: CollectorRegistry,
) -> None:
    app, _capture = start(sentry_endpoint.dsn)
    sentry_endpoint.status = 500
    with serve_in_process(app) as client:  # type: ignore[arg-type]
        assert client.get("/v2/pay/12").status_code == 500
        wait_for(lambda: dropped(registry) == {"http_5xx": 1.0})
        failure = sentry_delivery()
        assert failure is not None
        assert (failure.reason, failure.events) == ("http_5xx", 1)
        assert failure.since <= failure.at <= time.time()
        check = sentry_check()
        assert check is not None and check.status == "degraded"
        assert check.reason.startswith("Sentry did not take 1 error event since ")
        assert check.reason.endswith(": server error (5xx)")
        assert check.details["events_lost"] == 1
        # Ten minutes on with nothing sent since, the failure is past.
        later = sentry_check(now=failure.at + SENTRY_FAILURE_MEMORY + 1)
        assert later is not None and later.status == "healthy"
        assert later.reasons == ["last delivery failed 10 min ago (http_5xx); nothing sent since"]
        sentry_endpoint.status = 200
        assert client.get("/divide/0").status_code == 500  # another group: not budgeted away
        sentry_endpoint.wait_for_events(1)
        wait_for(lambda: sentry_delivery() is None)
        healthy = sentry_check()
        assert healthy is not None and (healthy.status, healthy.reason) == ("healthy", "ok")
    assert sentry_endpoint.refused == 1
    assert dropped(registry) == {"http_5xx": 1.0}


def test_a_429_and_the_events_dropped_while_it_lasts_are_sentry_rate_limited(
    start: Callable[[str], tuple[object, ErrorCapture]], sentry_endpoint: SentryReceiver,
    registry: CollectorRegistry,
) -> None:
    app, _capture = start(sentry_endpoint.dsn)
    sentry_endpoint.status = 429
    with serve_in_process(app) as client:  # type: ignore[arg-type]
        client.get("/v2/pay/12")
        wait_for(lambda: dropped(registry) == {"sentry_rate_limited": 1.0})
        # Within Retry-After, sentry-sdk drops the next event without sending it.
        client.get("/divide/0")
        wait_for(lambda: dropped(registry) == {"sentry_rate_limited": 2.0})
        failure = sentry_delivery()  # while the app runs: Sentry stops with it
    assert sentry_endpoint.refused == 1
    assert failure is not None
    assert (failure.reason, failure.events) == ("sentry_rate_limited", 2)


def test_a_closed_port_is_a_network_error(
    start: Callable[[str], tuple[object, ErrorCapture]], registry: CollectorRegistry,
) -> None:
    app, _capture = start(f"http://public@127.0.0.1:{free_port()}/1")
    with serve_in_process(app) as client:  # type: ignore[arg-type]
        client.get("/v2/pay/12")
        wait_for(lambda: dropped(registry) == {"network_error": 1.0})
        failure = sentry_delivery()
    assert failure is not None and failure.reason == "network_error"


def test_a_sentry_that_does_not_answer_in_time_is_a_timeout(
    sentry_endpoint: SentryReceiver,
) -> None:
    drops: list[tuple[str, int]] = []
    log = DeliveryLog(lambda reason, events: drops.append((reason, events)))
    sentry_endpoint.delay = 2.0
    # A release given: sentry-sdk would run `git` for one, and its Popen hook (installed by an
    # earlier test's client) would make the isolation scope's sampling context from that
    # closed client, whose DSN is gone: the event would name no project.
    sentry_sdk.init(dsn=sentry_endpoint.dsn, release="delivery-test",
                    transport=transport_class(log, timeout=1))
    try:
        try:
            raise KeyError("slow")
        except KeyError as exc:
            sentry_sdk.capture_exception(exc)
        sentry_sdk.flush(timeout=5)
    finally:
        sentry_sdk.get_client().close(timeout=1)
    assert drops == [("timeout", 1)]
    failure = log.failure()
    assert failure is not None and failure.reason == "timeout"


def test_the_health_api_names_sentry_while_it_refuses_events(
    tmp_path: Path, registry: CollectorRegistry, sentry_endpoint: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In an app watched in-process: /health/full has a `sentry` check, degraded (not
    unhealthy) while Sentry answers 503, healthy once an event is delivered; no check at all
    when Sentry is off."""
    from fastapi import FastAPI

    def app_with(dsn: str | None, registry: CollectorRegistry) -> FastAPI:
        if dsn:
            monkeypatch.setenv("EXPORTER_SENTRY_DSN", dsn)
        else:
            monkeypatch.delenv("EXPORTER_SENTRY_DSN", raising=False)
        app = FastAPI()

        @app.get("/boom/{kind}")
        async def boom(kind: str) -> None:
            raise (KeyError if kind == "key" else ValueError)(kind)

        settings = load_settings(data_dir=tmp_path / "data", history_interval_seconds=0.2)
        return instrument(app, settings, registry, observability=True)

    def sentry(client: object) -> dict | None:
        report = client.get("/api/v1/observability/health/full").json()  # type: ignore[attr-defined]
        return next((c for c in report["checks"] if c["name"] == "sentry"), None)

    sentry_endpoint.status = 503
    with serve_in_process(app_with(sentry_endpoint.dsn, registry)) as client:
        first = sentry(client)
        assert first is not None and (first["status"], first["kind"]) == ("healthy", "reporting")
        assert client.get("/boom/key").status_code == 500
        wait_for(lambda: (sentry(client) or {}).get("status") == "degraded")
        check = sentry(client)
        assert check is not None and check["reason"].endswith(": server error (5xx)")
        assert check["details"]["reason"] == "http_5xx"
        overall = client.get("/api/v1/observability/health/full")
        assert overall.status_code == 200 and overall.json()["status"] != "unhealthy"
        sentry_endpoint.status = 200
        assert client.get("/boom/value").status_code == 500
        wait_for(lambda: (sentry(client) or {}).get("status") == "healthy")
    with serve_in_process(app_with(None, CollectorRegistry())) as client:
        assert sentry(client) is None
