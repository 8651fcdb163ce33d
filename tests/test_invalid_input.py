"""Bad JSON values get a 422 naming the field on every sidecar route, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.config import load_settings
from tests.asgi import SyncClient, serve_in_process

JSON = {"content-type": "application/json"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[SyncClient]:
    settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data", demo=True,
                             demo_rate=0.1)
    with serve_in_process(create_app(settings, CollectorRegistry())) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("PUT", "/demo/config", '{"error_ratio": 0.1, "slow_seconds": NaN, "rate": 1}', "slow_seconds"),
    ("PUT", "/demo/config", '{"error_ratio": 0.1, "slow_seconds": 0.1, "rate": 1e309}', "rate"),
    ("POST", "/api/v1/logs/write", '{"message": NaN}', "message"),
    ("POST", "/api/v1/logs/write", '{"message": "x", "level": Infinity}', "level"),
    ("POST", "/api/v1/observability/alerts/webhook", '{"version": NaN}', "version"),
])
def test_non_finite_numbers_get_a_422_naming_the_field(
    client: SyncClient, method: str, path: str, body: str, field: str
) -> None:
    reply = client.request(method, path, content=body, headers=JSON)
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert any(error["loc"][-1] == field for error in detail), detail
    json.loads(reply.text, parse_constant=lambda name: pytest.fail(f"{name} in the reply"))


def test_a_lone_surrogate_gets_a_422_not_a_500(client: SyncClient) -> None:
    body = '{"error_ratio": "\\ud800", "slow_seconds": 0.1, "rate": 1}'
    reply = client.request("PUT", "/demo/config", content=body, headers=JSON)
    assert reply.status_code == 422, reply.text
    (error,) = reply.json()["detail"]
    assert error["loc"] == ["body", "error_ratio"]
    assert error["input"] == "?"  # echoed, made printable


def test_a_long_bad_value_is_echoed_cut_short(client: SyncClient) -> None:
    body = json.dumps({"error_ratio": "x" * 10_000, "slow_seconds": 0.1, "rate": 1})
    reply = client.request("PUT", "/demo/config", content=body, headers=JSON)
    assert reply.status_code == 422
    assert len(reply.json()["detail"][0]["input"]) < 300
