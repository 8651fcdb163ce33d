"""schemathesis against the sidecar's own OpenAPI schema, with every check: the schema is honest.

Positive and negative data for every operation, with the token and without one configured, and
the stateful sequences the schema's links describe (a group listed, then read, then its status
changed). No check is switched off: what a schema cannot say (an entry's timestamp must be
within a window that moves with the clock) is said by its 422, and a custom check holds the
log routes to refusing nothing else of valid data.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry
from schemathesis.config import SchemathesisConfig

from exporter.app import create_app
from exporter.config import load_settings
from exporter.errors.event import event_from_exception
from exporter.errors.store import ErrorStore

TOKEN = "schema-token"
# Module level: schemathesis reads the schema when the module is collected.
ROOT = Path(tempfile.mkdtemp(prefix="exporter-schema-"))
atexit.register(shutil.rmtree, ROOT, True)
LOG_ROUTES = ("/api/v1/logs/write", "/api/v1/logs/batch")
# The log routes answer 422 to an entry dated outside EXPORTER_LOG_ENTRY_MAX_AGE_SECONDS /
# _SKEW_SECONDS (their schema's 422 says so): valid data may meet it there, and nowhere else.
CONFIG = SchemathesisConfig.from_str("""
[[operations]]
include-path-regex = "^/api/v1/logs/(write|batch)$"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
""")
EXAMPLES = 25


def _app(token: str | None) -> FastAPI:
    folder = ROOT / (token or "open")
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    today = datetime.now(timezone.utc).date().isoformat()
    line = {"ts": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "level": "ERROR", "logger": "app", "message": "boom", "service": "app",
            "env": "test", "trace_id": "a" * 32, "duration_ms": 900.0, "status": 500}
    for stream in ("app", "error", "slow_requests"):
        (logs / f"{stream}_{today}.log").write_text(json.dumps(line) + "\n{torn\n")
    store = ErrorStore.in_directory(folder / "data")
    for kind in (KeyError, ValueError):  # groups for the links to lead to
        try:
            raise kind("boom")
        except Exception as exc:
            store.record([event_from_exception(exc, route="/a", method="GET", trace_id="c" * 32)])
    store.close()
    app = create_app(
        load_settings(log_dir=logs, data_dir=folder / "data", environment="test",
                      api_token=token),
        CollectorRegistry(),
    )
    monitor = app.state.health_monitor
    monitor.sampler.sample_once()
    monitor.sampler.sample_once()
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _app(TOKEN), config=CONFIG)
open_schema = schemathesis.openapi.from_asgi("/openapi.json", _app(None), config=CONFIG)


@schema.auth()
class _Token:
    """The bearer token the schema declares: schemathesis also tries requests without it, or
    with a wrong one, and expects the 401."""

    def get(self, case: schemathesis.Case, context: object) -> str:
        return TOKEN

    def set(self, case: schemathesis.Case, data: str, context: object) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def log_refusals_name_the_timestamp(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """Valid data refused by a log route: only for an entry's timestamp."""
    meta = case.meta
    if (response.status_code != 422 or case.operation.path not in LOG_ROUTES or meta is None
            or not meta.generation.mode.is_positive):
        return
    errors = json.loads(response.content)["detail"]
    where = [error["loc"][-1] for error in errors]
    assert where and all(field == "timestamp" for field in where), errors


HYPOTHESIS = settings(max_examples=EXAMPLES, deadline=None,
                      suppress_health_check=list(HealthCheck))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@schema.parametrize()
@HYPOTHESIS
def test_every_check_with_the_token(case: schemathesis.Case) -> None:
    case.call_and_validate(additional_checks=[log_refusals_name_the_timestamp])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@open_schema.parametrize()
@HYPOTHESIS
def test_every_check_without_a_token(case: schemathesis.Case) -> None:
    case.call_and_validate(additional_checks=[log_refusals_name_the_timestamp])


class _Workflow(schema.as_state_machine()):  # type: ignore[misc]
    def validate_response(self, response: Any, case: schemathesis.Case,
                          additional_checks: Any = None, **kwargs: Any) -> None:
        super().validate_response(
            response, case, additional_checks=[log_refusals_name_the_timestamp], **kwargs)


TestStatefulWithTheToken = _Workflow.TestCase
TestStatefulWithTheToken.settings = settings(
    max_examples=EXAMPLES, deadline=None, stateful_step_count=6,
    suppress_health_check=list(HealthCheck))


def test_the_links_lead_from_a_listed_group_to_its_routes() -> None:
    from tests.asgi import request

    spec = request(_app(None), "GET", "/openapi.json").json()
    errors = spec["paths"]["/api/v1/observability/errors"]["get"]["responses"]["200"]
    assert errors["links"]["GetErrorGroup"] == {
        "operationId": "get_error_group",
        "parameters": {"group_id": "$response.body#/items/0/id"}}
    one = spec["paths"]["/api/v1/observability/errors/{group_id}"]
    assert one["get"]["operationId"] == "get_error_group"
    assert one["patch"]["operationId"] == "set_error_status"


def test_the_protected_routes_declare_the_bearer_scheme_401_and_502() -> None:
    from tests.asgi import request

    spec = request(_app(TOKEN), "GET", "/openapi.json").json()
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

    app = create_app(load_settings(log_dir=tmp_path, data_dir=tmp_path, environment="test"),
                     CollectorRegistry())
    spec = request(app, "GET", "/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
    assert "401" not in spec["paths"]["/api/v1/logs/write"]["post"]["responses"]
