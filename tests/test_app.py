"""The sidecar app: what its HTTP metrics count."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.config import load_settings
from tests.asgi import serve_in_process


def counted_routes(registry: CollectorRegistry) -> set[str]:
    return {
        sample.labels["route"]
        for family in registry.collect() if family.name == "http_requests"
        for sample in family.samples if sample.name == "http_requests_total"
    }


def test_the_status_page_and_its_api_are_not_counted_the_log_api_is(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data",
                             log_stdout=False)
    with serve_in_process(create_app(settings, registry)) as client:
        for path in ("/", "/api/v1/observability/dashboard", "/api/v1/observability/health/full",
                     "/api/v1/observability/errors", "/api/v1/observability/logs?limit=1",
                     "/metrics"):
            assert client.get(path).status_code in (200, 503), path
        reply = client.post("/api/v1/logs/write", json={"message": "counted"})
        assert reply.status_code == 202
        assert "x-trace-id" in reply.headers
    assert counted_routes(registry) == {"/api/v1/logs/write"}
