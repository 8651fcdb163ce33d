"""The sidecar's Alertmanager webhook receiver and the notifications listed under /alerts."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.config import load_settings
from exporter.health.notifications import NotificationStore
from tests.asgi import SyncClient, serve_in_process

WEBHOOK = "/api/v1/observability/alerts/webhook"
ALERTS = "/api/v1/observability/alerts"
TOKEN = "planted-webhook-token-4f1c"

# What Alertmanager 0.25+ posts (webhook_config, payload version 4).
PAYLOAD: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}/{severity="critical"}:{alertname="HighErrorRate", service="demo"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "critical",
    "groupLabels": {"alertname": "HighErrorRate", "service": "demo"},
    "commonLabels": {"alertname": "HighErrorRate", "service": "demo", "severity": "critical"},
    "commonAnnotations": {"summary": "More than 5 % of HTTP responses are 5xx errors"},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "service": "demo", "severity": "critical"},
            "annotations": {
                "summary": "More than 5 % of HTTP responses are 5xx errors",
                "description": "25% of the HTTP responses of demo were 5xx",
            },
            "startsAt": "2026-11-23T17:00:00.123Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
            "fingerprint": "4c3a1d0e9b8f7a65",
        },
        {
            "status": "resolved",
            "labels": {
                "alertname": "HighErrorRate",
                "service": "demo",
                "severity": "critical",
                "instance": "b:9480",
            },
            "annotations": {},
            "startsAt": "2026-11-23T16:50:00Z",
            "endsAt": "2026-11-23T16:55:00+00:00",
            "generatorURL": "",
            "fingerprint": "0011223344556677",
        },
    ],
}


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Any]:
    stack = ExitStack()

    def start(**overrides: Any) -> SyncClient:
        settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data", **overrides)
        client = stack.enter_context(serve_in_process(create_app(settings, CollectorRegistry())))
        return client

    with stack:
        yield start


def test_a_notification_is_accepted_and_listed_under_alerts(sidecar: Any) -> None:
    client = sidecar()
    assert client.get(ALERTS).json()["notifications"] == []
    reply = client.request("POST", WEBHOOK, json=PAYLOAD)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"accepted_alerts": 2}
    [notification] = client.get(ALERTS).json()["notifications"]
    assert notification["status"] == "firing"
    assert notification["receiver"] == "critical"
    assert notification["group_labels"] == {"alertname": "HighErrorRate", "service": "demo"}
    assert notification["common_labels"]["severity"] == "critical"
    assert notification["external_url"] == "http://alertmanager:9093"
    firing, resolved = notification["alerts"]
    assert firing["labels"]["alertname"] == "HighErrorRate"
    assert firing["annotations"]["description"] == "25% of the HTTP responses of demo were 5xx"
    assert firing["starts_at"] == "2026-11-23T17:00:00.123000Z"
    assert firing["ends_at"] is None  # Alertmanager's zero time: still firing
    assert resolved["ends_at"] == "2026-11-23T16:55:00Z"
    assert resolved["fingerprint"] == "0011223344556677"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p.pop("alerts"), "alerts"),
        (lambda p: p.update(status="pending"), "status"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "startsAt"),
        (lambda p: p["alerts"][0].update(startsAt="2026-11-23T17:00:00"), "startsAt"),
        (lambda p: p["alerts"][1].update(labels={"severity": 3}), "severity"),
        (lambda p: p.update(truncatedAlerts=-1), "truncatedAlerts"),
        (lambda p: p.update(alerts=[PAYLOAD["alerts"][0]] * 1001), "alerts"),
    ],
)
def test_a_bad_payload_gets_422_naming_the_field(sidecar: Any, change: Any, field: str) -> None:
    client = sidecar()
    payload = copy.deepcopy(PAYLOAD)
    change(payload)
    reply = client.request("POST", WEBHOOK, json=payload)
    assert reply.status_code == 422, reply.text
    locations = [".".join(str(part) for part in e["loc"]) for e in reply.json()["detail"]]
    assert any(field in location for location in locations), locations
    assert client.get(ALERTS).json()["notifications"] == []


def test_a_body_that_is_not_json_gets_422(sidecar: Any) -> None:
    client = sidecar()
    reply = client.request(
        "POST", WEBHOOK, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422


def test_the_token_rule_applies_and_the_token_is_never_echoed(sidecar: Any) -> None:
    client = sidecar(api_token=TOKEN)
    assert client.request("POST", WEBHOOK, json=PAYLOAD).status_code == 401
    wrong = client.request("POST", WEBHOOK, json=PAYLOAD, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert client.request("POST", WEBHOOK, json=PAYLOAD, headers=auth).status_code == 200
    listed = client.get(ALERTS, headers=auth)
    assert len(listed.json()["notifications"]) == 1
    assert TOKEN not in listed.text


def test_only_the_newest_notifications_are_kept(sidecar: Any) -> None:
    client = sidecar(alert_notifications_kept=3)
    for number in range(5):
        payload = copy.deepcopy(PAYLOAD)
        payload["groupKey"] = f"group-{number}"
        assert client.request("POST", WEBHOOK, json=payload).status_code == 200
    kept = [n["group_key"] for n in client.get(ALERTS).json()["notifications"]]
    assert kept == ["group-4", "group-3", "group-2"]


def test_the_store_refuses_a_zero_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        NotificationStore(0)


def test_the_webhook_is_in_the_openapi_schema(sidecar: Any) -> None:
    schema = sidecar().get("/openapi.json").json()
    assert "post" in schema["paths"][WEBHOOK]
    assert "notifications" in schema["components"]["schemas"]["AlertsReport"]["properties"]


def test_with_a_token_the_schema_declares_the_bearer_scheme_and_401(sidecar: Any) -> None:
    schema = sidecar(api_token=TOKEN).get("/openapi.json").json()
    post = schema["paths"][WEBHOOK]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert "401" in post["responses"]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
