"""Sentry reporting through sentry-sdk's real transport, to an in-test endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from prometheus_client import CollectorRegistry

from exporter.api.errors import errors_router
from exporter.errors.capture import ErrorCapture
from exporter.errors.sentry import shutdown_sentry
from tests.asgi import serve_in_process
from tests.sentry_receiver import SentryReceiver, parse_envelope
from tests.test_errors_capture import SECRETS, PaymentDeclined, build

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def sentry_app(
    tmp_path: Path, registry: CollectorRegistry, sentry_endpoint: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[object, ErrorCapture]]:
    monkeypatch.setenv("EXPORTER_SENTRY_DSN", sentry_endpoint.dsn)
    app, capture = build(tmp_path, registry)
    assert capture.sentry_started
    assert not sentry_sdk.get_client().should_send_default_pii()
    assert capture.store is not None
    app.include_router(errors_router(capture.store, capture.settings))
    yield app, capture
    capture.stop()
    shutdown_sentry()


def _group_ids(capture: ErrorCapture) -> dict[str, str]:
    assert capture.writer is not None and capture.store is not None
    capture.writer.flush()
    return {str(g["type"]): str(g["id"]) for g in capture.store.groups()[1]}


def test_an_unhandled_error_reaches_sentry_tagged_and_fingerprinted_like_the_store(
    sentry_app: tuple[object, ErrorCapture], sentry_endpoint: SentryReceiver
) -> None:
    app, capture = sentry_app
    with serve_in_process(app) as client:  # type: ignore[arg-type]
        assert client.get("/v2/pay/12", headers={"traceparent": TRACEPARENT}).status_code == 500
        events = sentry_endpoint.wait_for_events(1)
        groups = _group_ids(capture)
    assert len(events) == 1
    event = events[0]
    assert event["tags"]["trace_id"] == TRACE_ID
    assert event["tags"]["route"] == "/v2/pay/{amount}"
    assert (event["environment"], event["release"]) == ("test", "9.9.9")
    assert event["fingerprint"] == [groups[f"{PaymentDeclined.__module__}.PaymentDeclined"]]
    assert event["exception"]["values"][-1]["type"] == "PaymentDeclined"


def test_logged_and_explicit_errors_carry_the_store_fingerprint(
    sentry_app: tuple[object, ErrorCapture], sentry_endpoint: SentryReceiver
) -> None:
    app, capture = sentry_app
    with serve_in_process(app) as client:  # type: ignore[arg-type]
        client.get("/logged", headers={"traceparent": TRACEPARENT})
        client.get("/explicit")
        events = sentry_endpoint.wait_for_events(2)
        groups = _group_ids(capture)
    by_type = {e["exception"]["values"][-1]["type"]: e for e in events}
    assert by_type["KeyError"]["fingerprint"] == [groups["KeyError"]]
    assert by_type["KeyError"]["tags"]["trace_id"] == TRACE_ID
    assert by_type["TimeoutError"]["fingerprint"] == [groups["TimeoutError"]]
    # Inside a request, the request's route is a tag, as for unhandled errors.
    assert by_type["KeyError"]["tags"]["route"] == "/logged"
    assert by_type["TimeoutError"]["tags"]["route"] == "/explicit"
    assert by_type["TimeoutError"]["contexts"]["exporter"] == {
        "order": 17, "api_token": "[Filtered]"}


def test_planted_secrets_reach_neither_sentry_nor_the_store_nor_the_api(
    sentry_app: tuple[object, ErrorCapture], sentry_endpoint: SentryReceiver
) -> None:
    app, capture = sentry_app
    with serve_in_process(app) as client:  # type: ignore[arg-type]
        response = client.post(
            "/login?password=hunter2&page=2",
            json={"password": "hunter2", "dsn": "postgresql://shop:pg-pass-77@db/shop",
                  "token": "tok-4f9a8b7c"},
            headers={"Authorization": "Bearer abcdef123456", "Cookie": "session=s3cr3t-cookie",
                     "traceparent": TRACEPARENT},
        )
        assert response.status_code == 500
        client.get("/logged")
        client.get("/explicit")
        events = sentry_endpoint.wait_for_events(3)
        groups = _group_ids(capture)
        api = [client.get("/api/v1/observability/errors").text,
               client.get("/api/v1/observability/errors/summary").text,
               client.get("/api/v1/observability/errors/top").text]
        api += [client.get(f"/api/v1/observability/errors/{gid}").text for gid in groups.values()]
    assert len(events) == 3
    login = next(e for e in events if e["exception"]["values"][-1]["type"] == "RuntimeError")
    assert login["request"]["method"] == "POST"  # the request part was there, and scrubbed
    assert "hunter2" not in json.dumps(login["request"])
    for secret in SECRETS:
        for envelope in sentry_endpoint.envelopes:
            assert secret.encode() not in envelope.raw, secret
        for reply in api:
            assert secret not in reply, secret
    assert capture.store is not None
    for secret in SECRETS:
        for path in capture.store.path.parent.iterdir():
            assert secret.encode() not in path.read_bytes(), (secret, path)


def test_the_strict_parser_rejects_a_malformed_envelope() -> None:
    good = b'{"event_id":"' + b"a" * 32 + b'"}\n{"type":"event","length":2}\n{}\n'
    assert parse_envelope(good).items[0][1] == b"{}"
    with pytest.raises(ValueError, match="length"):
        parse_envelope(b'{"event_id":"' + b"a" * 32 + b'"}\n{"type":"event"}\n{}\n')
    with pytest.raises(ValueError, match="shorter"):
        parse_envelope(b'{"event_id":"' + b"a" * 32 + b'"}\n{"type":"event","length":9}\n{}')


def test_with_tracing_the_asgi_integration_runs_and_errors_are_still_sent_once(
    tmp_path: Path, registry: CollectorRegistry, sentry_endpoint: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPORTER_SENTRY_DSN", sentry_endpoint.dsn)
    monkeypatch.setenv("EXPORTER_SENTRY_TRACES_SAMPLE_RATE", "1.0")
    app, capture = build(tmp_path, registry)
    try:
        with serve_in_process(app) as client:
            client.get("/divide/0", headers={"traceparent": TRACEPARENT})
            client.get("/v1/pay/1")
            sentry_sdk.flush(5)
            capture.stop()
            groups = _group_ids(capture)
    finally:
        capture.stop()
        shutdown_sentry()
    events = sentry_endpoint.events()
    transactions = [json.loads(payload) for envelope in sentry_endpoint.envelopes
                    for header, payload in envelope.items if header["type"] == "transaction"]
    assert sorted(e["exception"]["values"][-1]["type"] for e in events) == [
        "PaymentDeclined", "ZeroDivisionError"]
    by_type = {e["exception"]["values"][-1]["type"]: e for e in events}
    assert by_type["ZeroDivisionError"]["fingerprint"] == [groups["ZeroDivisionError"]]
    assert by_type["ZeroDivisionError"]["tags"]["trace_id"] == TRACE_ID
    assert {t["transaction"] for t in transactions} == {"/divide/{n}", "/v1/pay/{amount}"}


def test_sentry_gets_a_budgeted_sample_while_the_store_counts_everything(
    tmp_path: Path, registry: CollectorRegistry, sentry_endpoint: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPORTER_SENTRY_DSN", sentry_endpoint.dsn)
    monkeypatch.setenv("EXPORTER_SENTRY_EVENTS_PER_SECOND", "1")  # bursts of 5
    app, capture = build(tmp_path, registry)
    try:
        with serve_in_process(app) as client:
            for _ in range(20):  # one group: one event per second at most
                client.get("/divide/0")
            for index in range(20):  # twenty groups: the global budget
                try:
                    raise type(f"Kind{index}", (Exception,), {})("x")
                except Exception as exc:
                    capture.capture(exc)
            capture.stop()
            groups = _group_ids(capture)
    finally:
        capture.stop()
        shutdown_sentry()
    types = [event["exception"]["values"][-1]["type"] for event in sentry_endpoint.events()]
    assert types.count("ZeroDivisionError") == 1
    assert 4 <= len(types) - 1 <= 6  # the burst of 5 less the one above, maybe one refilled
    assert capture.store is not None
    assert capture.store.group(groups["ZeroDivisionError"])["count"] == 20  # type: ignore[index]
    assert registry.get_sample_value(
        "errors_sentry_dropped_total", {"reason": "group_interval"}) == 19
    assert registry.get_sample_value(
        "errors_sentry_dropped_total", {"reason": "rate_limited"}) == 40 - len(types) - 19


def test_sentry_sdks_own_scrubber_also_judges_names_by_our_words() -> None:
    from exporter.errors.sentry_scrub import event_scrubber

    event: dict[str, Any] = {
        "request": {"headers": {"X-Stripe-Key": "sk-1", "X-Keyboard": "us", "Cookie": "c"}},
        "extra": {"passphrase": "p-2", "keyword": "shoes", "nested": {"api_key": "k-3"}},
    }
    event_scrubber().scrub_event(event)
    text = json.dumps(event, default=lambda value: f"<{value.value}>")
    assert "sk-1" not in text and "p-2" not in text and "k-3" not in text and '"c"' not in text
    assert event["request"]["headers"]["X-Keyboard"] == "us"
    assert event["extra"]["keyword"] == "shoes"
