"""/api/v1/observability on the sidecar: health, metrics, alerts, token, OpenAPI."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.config import load_settings
from tests.asgi import SyncClient, serve_in_process
from tests.conftest import require_tcp
from tests.probe_helpers import hanging_server

API = "/api/v1/observability"
FAST = {"probe_interval_seconds": 0.1, "history_interval_seconds": 0.1}


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Any]:
    """Start a sidecar app in-process with the given settings; yields a factory."""
    stack = ExitStack()

    def start(**overrides: Any) -> SyncClient:
        settings = load_settings(log_dir=tmp_path / "logs", **{**FAST, **overrides})
        client = stack.enter_context(serve_in_process(create_app(settings, CollectorRegistry())))
        return client

    with stack:
        yield start


def monitor(client: SyncClient) -> Any:
    return client.app.state.health_monitor


def test_hanging_dependency_leaves_metrics_instant_and_health_degraded(sidecar: Any) -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    with hanging_server() as (port, accepted):
        client = sidecar(
            dependencies={
                "cache": "redis://127.0.0.1:6379/0",
                "stuck": f"postgresql://postgres@127.0.0.1:{port}/test",
            },
            probe_timeout_seconds=3.0,
        )
        wait_for(lambda: accepted)  # the probe of "stuck" is now waiting on the server
        scrape = client.get("/metrics")
        # /metrics answered while the probe round is still waiting on the hanging server.
        assert scrape.status_code == 200 and monitor(client).runner.rounds == 0
        assert "http_requests_total" in scrape.text or "system_cpu" in scrape.text
        assert monitor(client).runner.wait_for_rounds(1, timeout=10)
        # Read while the server still hangs: once it is gone, the next round reads "refused".
        report = client.get(f"{API}/health/full")
        scrape = client.get("/metrics").text
    assert report.status_code == 200
    body = report.json()
    assert body["status"] == "degraded"
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["stuck"]["status"] == "degraded"
    assert checks["stuck"]["reason"] == "down: timed out after 3 s"
    assert checks["cache"]["status"] == "healthy" and checks["cache"]["details"]["up"] is True
    assert 'dependency_up{kind="postgresql",name="stuck"} 0.0' in scrape
    assert 'dependency_up{kind="redis",name="cache"} 1.0' in scrape


def test_database_and_redis_health_split_by_kind(sidecar: Any, tmp_path: Path) -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    require_tcp("127.0.0.1", 3306, "MariaDB")
    import sqlite3

    sqlite3.connect(tmp_path / "app.db").close()
    client = sidecar(
        dependencies={
            "cache": "redis://127.0.0.1:6379/0",
            "users": "mysql://root@127.0.0.1:3306/test",
            "local": f"sqlite://{tmp_path}/app.db",
        }
    )
    assert monitor(client).runner.wait_for_rounds(1, timeout=10)
    db = client.get(f"{API}/health/database").json()
    assert sorted(c["name"] for c in db["checks"]) == ["local", "users"]
    assert db["status"] == "healthy"
    redis_report = client.get(f"{API}/health/redis").json()
    assert [c["name"] for c in redis_report["checks"]] == ["cache"]
    assert redis_report["checks"][0]["details"]["used_memory_bytes"] > 0


def test_wrong_password_never_reaches_a_reply(sidecar: Any) -> None:
    require_tcp("127.0.0.1", 3306, "MariaDB")
    wrong = "Pl4nted-" + uuid.uuid4().hex
    client = sidecar(dependencies={"users": f"mysql://root:{wrong}@127.0.0.1:3306/test"})
    assert monitor(client).runner.wait_for_rounds(1, timeout=10)
    for path in ("/health/full", "/health/database", "/dashboard", "/metrics", "/alerts"):
        reply = client.get(API + path)
        assert wrong not in reply.text, path
    check = client.get(f"{API}/health/database").json()["checks"][0]
    assert check["status"] == "degraded" and "Access denied" in check["reason"]
    assert check["details"]["url"] == "mysql://root:***@127.0.0.1:3306/test"
    assert wrong not in client.get("/metrics").text
    assert wrong not in client.get("/openapi.json").text


def test_queue_checks_flag_missing_queues(sidecar: Any) -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    client = sidecar(queues=[f"redis://127.0.0.1:6379/0/{missing}"])
    assert monitor(client).runner.wait_for_rounds(1, timeout=10)
    (check,) = [
        c for c in client.get(f"{API}/health/full").json()["checks"] if c["kind"] == "queue"
    ]
    assert check["details"]["exists"] is False and check["details"]["depth"] == 0
    assert "absent" in check["reason"]


def critical_disk_thresholds(tmp_path: Path) -> Path:
    path = tmp_path / "thresholds.yaml"
    path.write_text(
        "version: 1\nthresholds:\n  disk:\n    alert: DiskAlmostFull\n"
        "    signal: disk_usage_ratio\n    above: 0.000001\n    for: 0s\n"
        "    severity: critical\n    summary: any disk use at all\n"
    )
    return path


def test_unhealthy_answers_503_with_the_firing_alert(sidecar: Any, tmp_path: Path) -> None:
    client = sidecar(thresholds_file=critical_disk_thresholds(tmp_path), disk_paths=["/"])
    wait_for(lambda: monitor(client).alerts.active())
    report = client.get(f"{API}/health/full")
    assert report.status_code == 503
    assert report.json()["status"] == "unhealthy"
    system = client.get(f"{API}/health/system")
    assert system.status_code == 200 and system.json()["status"] == "unhealthy"
    alerts = client.get(f"{API}/alerts").json()
    (firing,) = alerts["firing"]
    assert firing["alert"] == "DiskAlmostFull" and firing["labels"] == {"mountpoint": "/"}
    assert firing["threshold"] == 0.000001 and firing["value"] > firing["threshold"]
    assert firing["since"] and firing["state"] == "firing"


def test_metrics_json_has_current_figures_and_history(sidecar: Any) -> None:
    client = sidecar()
    wait_for(lambda: len(monitor(client).history.points()) >= 3)
    for _ in range(5):
        client.get(f"{API}/alerts")
    body = client.get(f"{API}/metrics", params={"window": "1h"}).json()
    assert body["interval_seconds"] == 0.1 and body["window_seconds"] == 3600
    assert 0 <= body["current"]["cpu_usage_ratio"] <= 1
    assert 0 < body["current"]["memory_usage_ratio"] < 1
    assert body["current"]["window"] == "5m"  # what rates are over: the rules' window
    # Every signal of the catalogue, by subject; the named fields are the same values.
    signals = body["current"]["signals"]
    assert signals["cpu_usage_ratio"] == {"": body["current"]["cpu_usage_ratio"]}
    assert signals["disk_usage_ratio"] == body["current"]["disk_usage_ratio"]
    assert set(signals) >= {"http_error_ratio", "http_latency_p95_seconds", "queue_depth"}
    assert len(body["history"]) >= 3
    short = client.get(f"{API}/metrics", params={"window": "1s"}).json()
    assert short["window_seconds"] == 1 and len(short["history"]) <= 11  # every 0.1 s
    day = client.get(f"{API}/metrics", params={"window": "1d"})  # the forms `since` takes
    assert day.status_code == 200 and day.json()["window_seconds"] == 3600  # capped
    nothing = client.get(f"{API}/metrics", params={"window": "0s"})  # the schema's pattern
    assert nothing.status_code == 200 and nothing.json()["window_seconds"] == 0
    for value in ("an hour", "90", " 1h", "000"):
        bad = client.get(f"{API}/metrics", params={"window": value})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "window"]
        message = bad.json()["detail"][0]["msg"]
        assert "look-back such as 30s, 15m, 2h, 1h30m or 1d" in message and "\\d" not in message


def test_token_guards_every_route(sidecar: Any) -> None:
    client = sidecar(api_token="t0ken-" + uuid.uuid4().hex)
    token = monitor(client).settings.api_token.get_secret_value()
    paths = [
        p for p, ops in client.app.openapi()["paths"].items() if p.startswith(API) and "get" in ops
    ]  # the POST webhook: test_alert_webhook.py
    assert len(paths) >= 10
    for template in paths:
        path = re.sub(r"\{\w+\}", "0" * 32, template)  # an id nobody has: 404 past the guard
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code in ((404,) if "{" in template else (200, 503)), path


def test_openapi_documents_each_route_with_its_model(sidecar: Any) -> None:
    schema = sidecar().get("/openapi.json").json()
    routes = {p: ops for p, ops in schema["paths"].items() if p.startswith(API) and "get" in ops}
    assert len(routes) >= 10
    for path, ops in routes.items():
        schema_200 = ops["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        ref = schema_200.get("$ref") or schema_200["items"]["$ref"]  # a model, or a list of one
        assert ref.startswith("#/components/schemas/"), path
    assert "503" in routes[f"{API}/health/full"]["get"]["responses"]
    assert "ready messages only" in str(schema["components"]["schemas"]["CurrentMetrics"])


def test_promtool_accepts_the_probe_metrics(sidecar: Any, tmp_path: Path) -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    from tests.conftest import require_binary

    promtool = require_binary("promtool", "prometheus")
    import sqlite3
    import subprocess

    sqlite3.connect(tmp_path / "app.db").close()
    client = sidecar(
        dependencies={"cache": "redis://127.0.0.1:6379/0", "local": f"sqlite://{tmp_path}/app.db"},
        queues=["redis://127.0.0.1:6379/0/exporter-promtool-queue"],
    )
    assert monitor(client).runner.wait_for_rounds(1, timeout=10)
    scrape = client.get("/metrics").text
    assert "dependency_probe_duration_seconds_bucket" in scrape and "queue_depth{" in scrape
    done = subprocess.run(
        [promtool, "check", "metrics"], input=scrape, capture_output=True, text=True, timeout=30
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "dependency" in line or "queue" in line
    ]
    assert problems == [], problems
