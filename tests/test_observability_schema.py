"""schemathesis against the sidecar's own OpenAPI schema: no input makes a route answer 500."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry
from schemathesis.specs.openapi.checks import allow_header_conformance, positive_data_acceptance

from exporter.app import create_app
from exporter.config import load_settings

# Module level: schemathesis reads the schema when the module is collected.
LOG_DIR = Path(tempfile.mkdtemp(prefix="exporter-schema-logs-"))
atexit.register(shutil.rmtree, LOG_DIR, True)


def _app() -> object:
    today = datetime.now(timezone.utc).date().isoformat()
    LOG_DIR.mkdir(exist_ok=True)
    line = {"ts": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "level": "ERROR", "logger": "app", "message": "boom", "service": "app",
            "env": "test", "trace_id": "a" * 32, "duration_ms": 900.0, "status": 500}
    for stream in ("app", "error", "slow_requests"):
        (LOG_DIR / f"{stream}_{today}.log").write_text(json.dumps(line) + "\n{torn\n")
    app = create_app(
        load_settings(log_dir=LOG_DIR, environment="test", api_token="schema-token"),
        CollectorRegistry(),
    )
    monitor = app.state.health_monitor
    monitor.sampler.sample_once()
    monitor.sampler.sample_once()
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.auth()
class _Token:
    """The bearer token the schema declares: schemathesis also tries requests without it, or
    with a wrong one, and expects the 401."""

    def get(self, case: schemathesis.Case, context: object) -> str:
        return "schema-token"

    def set(self, case: schemathesis.Case, data: str, context: object) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_route_answers_500(case: schemathesis.Case) -> None:
    # Not `positive_data_acceptance`: a pattern cannot say that 2026-13-45 is no date. Not
    # `allow_header_conformance`: on a path with GET and PATCH routes (errors/{id}), Starlette's
    # router answers other methods 405 with the Allow of the first route only.
    case.call_and_validate(excluded_checks=[positive_data_acceptance, allow_header_conformance])


def test_the_protected_routes_declare_the_bearer_scheme_401_and_502() -> None:
    from tests.asgi import request

    spec = request(_app(), "GET", "/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer",
        "description": "EXPORTER_API_TOKEN: send `Authorization: Bearer <token>`"}
    for path in ("/api/v1/logs/write", "/api/v1/logs/batch", "/api/v1/logs/health",
                 "/api/v1/observability/errors", "/api/v1/observability/errors/{group_id}",
                 "/api/v1/observability/health/full", "/api/v1/observability/logs"):
        for operation in spec["paths"][path].values():
            assert operation["security"] == [{"bearerAuth": []}], path
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorReply"}, path
    for path in ("/api/v1/observability/logs", "/api/v1/observability/logs/errors",
                 "/api/v1/observability/logs/slow-requests"):
        assert "502" in spec["paths"][path]["get"]["responses"], path


def test_without_a_token_no_scheme_is_claimed(tmp_path: Path) -> None:
    from tests.asgi import request

    app = create_app(load_settings(log_dir=tmp_path, environment="test"), CollectorRegistry())
    spec = request(app, "GET", "/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
    assert "401" not in spec["paths"]["/api/v1/logs/write"]["post"]["responses"]
