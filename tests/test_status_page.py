"""GET / (the status page) and the status-page fields of /api/v1/observability/dashboard."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.config import load_settings
from tests.asgi import SyncClient, serve_in_process

TOKEN = "status-page-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[SyncClient]:
    settings = load_settings(
        log_dir=tmp_path / "logs",
        data_dir=tmp_path / "data",
        api_token=TOKEN,
        history_interval_seconds=0.1,
        log_stdout=False,
    )
    with serve_in_process(create_app(settings, CollectorRegistry())) as client:
        yield client


def test_the_page_is_served_without_the_token_and_holds_no_data(client: SyncClient) -> None:
    reply = client.get("/")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    html = reply.text
    assert '<meta name="exporter-token-required" content="true">' in html
    assert TOKEN not in html
    # Self-contained: no script, style or font from anywhere else.
    assert not re.search(r"(src|href)=\"https?://", html)
    assert client.get("/api/v1/observability/dashboard").status_code == 401


def test_only_the_shipped_script_and_style_may_run(client: SyncClient) -> None:
    reply = client.get("/")
    policy = reply.headers["content-security-policy"]
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        (body,) = re.findall(rf"<{tag}>(.*?)</{tag}>", reply.text, re.S)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_without_a_token_the_page_does_not_ask_for_one(tmp_path: Path) -> None:
    settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data")
    with serve_in_process(create_app(settings, CollectorRegistry())) as client:
        html = client.get("/").text
    assert '<meta name="exporter-token-required" content="false">' in html


def dashboard(client: SyncClient, samples: int = 3) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        body: dict[str, Any] = client.get("/api/v1/observability/dashboard", headers=AUTH).json()
        if len(body["history_ts"]) >= samples and body["metrics"]["cpu_usage_ratio"] is not None:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_the_dashboard_keeps_its_fields_and_adds_the_pages(client: SyncClient) -> None:
    client.get("/api/v1/observability/alerts", headers=AUTH)  # some traffic
    body = dashboard(client)
    for field in (
        "service",
        "environment",
        "generated_at",
        "health",
        "metrics",
        "alerts",
        "recent_errors",
    ):
        assert field in body
    assert body["history_interval_seconds"] == 0.1
    assert body["history_ts"] == sorted(body["history_ts"])
    series = {s["id"]: s for s in body["series"]}
    assert list(series)[:6] == [
        "cpu_usage_ratio", "memory_usage_ratio", "disk_usage_ratio:/",
        "http_requests_per_second", "http_error_ratio", "http_latency_p95_seconds"]
    metrics = body["metrics"]
    assert series["cpu_usage_ratio"]["current"] == metrics["cpu_usage_ratio"]
    assert series["memory_usage_ratio"]["current"] == metrics["memory_usage_ratio"]
    assert series["disk_usage_ratio:/"]["current"] == metrics["disk_usage_ratio"]["/"]
    assert series["http_requests_per_second"]["current"] == metrics["qps"]
    assert series["http_latency_p95_seconds"]["current"] == metrics["latency_seconds"]["p95"]
    for s in body["series"]:
        assert len(s["values"]) == len(body["history_ts"])
    # Rates say over what; gauges are their newest sample.
    assert series["http_error_ratio"]["window"] == metrics["window"] == "5m"
    assert series["cpu_usage_ratio"]["window"] is None
    # Thresholds from the packaged thresholds.yaml; QPS has none.
    assert (series["cpu_usage_ratio"]["threshold"],
            series["cpu_usage_ratio"]["threshold_alert"]) == (0.8, "HighCpuUsage")
    assert series["http_error_ratio"]["threshold"] == 0.05
    assert series["http_latency_p95_seconds"]["threshold"] == 0.5
    assert series["http_requests_per_second"]["threshold"] is None
    assert body["top_errors"] == []
    assert body["slow_requests"] == []


def test_top_errors_and_slow_requests_reach_the_dashboard(tmp_path: Path) -> None:
    settings = load_settings(
        log_dir=tmp_path / "logs",
        data_dir=tmp_path / "data",
        demo=True,
        demo_rate=0,
        demo_slow_seconds=0.55,
        history_interval_seconds=0.1,
        log_stdout=False,
    )
    with serve_in_process(create_app(settings, CollectorRegistry())) as client:
        assert client.get("/demo/boom").status_code == 500
        assert client.get("/demo/slow").status_code == 200
        deadline = time.monotonic() + 30  # 10 s ran out once under a loaded full suite
        while True:
            body = dashboard(client, samples=1)
            if body["top_errors"] and body["slow_requests"]:
                break
            assert time.monotonic() < deadline, {k: body[k] for k in ("top_errors",
                                                                     "slow_requests")}
            time.sleep(0.1)
    (group,) = body["top_errors"]
    assert group["type"] == "RuntimeError"
    assert group["message"] == "demo boom: an unhandled exception"
    assert group["window_count"] == 1
    (slow,) = body["slow_requests"]
    assert slow["route"] == "/demo/slow"
    assert slow["duration_ms"] >= 500
