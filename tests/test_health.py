"""Health checks from the monitor's last results: statuses and reasons per check."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry

from exporter.config import load_settings
from exporter.health.checks import http_check, queue_checks
from exporter.health.monitor import HealthMonitor
from tests.conftest import require_tcp

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def key() -> Iterator[str]:
    require_tcp("127.0.0.1", 6379, "Redis")
    name = f"health-{uuid.uuid4().hex[:10]}"
    yield name
    conn = redis.Redis()
    conn.delete(name)
    conn.close()


def read_checks(queues: str) -> dict[str, tuple[str, str]]:
    monitor = HealthMonitor(load_settings(queues=queues), CollectorRegistry())
    asyncio.run(monitor.runner.run_round())
    return {c.name: (c.status, c.reason) for c in queue_checks(monitor)}


def test_a_redis_key_of_another_type_degrades_its_queue(key: str) -> None:
    conn = redis.Redis()
    conn.hset(key, "f", "v")
    conn.close()
    assert read_checks(f"{REDIS}/{key}")[f"redis/{key}"] == (
        "degraded", "key holds a hash, not a list or stream"
    )


def test_a_missing_redis_key_is_flagged_but_stays_healthy(key: str) -> None:
    status, reason = read_checks(f"{REDIS}/{key}")[f"redis/{key}"]
    assert status == "healthy" and "absent" in reason


def test_the_http_check_says_over_which_window_its_figures_are() -> None:
    """The details are the alerts' own values, named by their signal, over the rules' window."""
    registry = CollectorRegistry()
    monitor = HealthMonitor(load_settings(), registry)
    monitor.history.record()
    monitor.history.record()
    check = http_check(monitor, [])
    assert check.details["window"] == "5m"  # render.rate_window of the packaged thresholds
    assert set(check.details) <= {"window", "http_requests_per_second", "http_error_ratio",
                                  "http_latency_p50_seconds", "http_latency_p95_seconds",
                                  "http_latency_p99_seconds"}
