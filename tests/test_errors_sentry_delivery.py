"""Events sentry-sdk's transport could not deliver: counted by reason, and the latest failure
kept for health until an event is delivered. sentry-sdk's real transport, a real endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sentry_sdk
from prometheus_client import CollectorRegistry

from exporter.errors.capture import ErrorCapture
from exporter.errors.sentry import DROP_REASONS, sentry_delivery
from exporter.errors.sentry_transport import DELIVERY_REASONS, DeliveryLog, transport_class
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
        sentry_endpoint.status = 200
        assert client.get("/divide/0").status_code == 500  # another group: not budgeted away
        sentry_endpoint.wait_for_events(1)
        wait_for(lambda: sentry_delivery() is None)
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
    sentry_sdk.init(dsn=sentry_endpoint.dsn, transport=transport_class(log, timeout=1))
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
