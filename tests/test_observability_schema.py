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


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_route_answers_500(case: schemathesis.Case) -> None:
    case.headers = {**(case.headers or {}), "Authorization": "Bearer schema-token"}
    # Not `positive_data_acceptance`: a pattern cannot say that 2026-13-45 is no date. Not
    # `allow_header_conformance`: on a path with GET and PATCH routes (errors/{id}), Starlette's
    # router answers other methods 405 with the Allow of the first route only.
    case.call_and_validate(excluded_checks=[positive_data_acceptance, allow_header_conformance])
