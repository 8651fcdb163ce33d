"""Every PromQL expression of the generated rules and dashboards, on a real Prometheus.

Prometheus scrapes a real sidecar with demo traffic, a Redis and a SQLite dependency and a
Redis queue, evaluates the committed rules, and answers each expression: all must parse, and
the HTTP, host, dependency and queue panels must return data.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import require_tcp, run_sidecar
from tests.prometheus_stack import query, run_prometheus, scrape_config

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "grafana" / "dashboards"
# Dashboards whose every Prometheus panel must show data with the demo running.
WITH_DATA = ("service-overview.json", "host.json", "dependencies-queues.json")
# Series that a Redis list queue does not have (no consumers count, no stream groups).
NO_DATA_EXPECTED = {"Consumers", "Pending (delivered, not acknowledged)"}
# "All" of every variable is its allValue, `.+`; the built-in intervals are fixed.
_VARIABLES = {"$service": ".+", "$route": ".+", "$instance": ".+", "$task": ".+",
              "$__rate_interval": "1m", "$__interval": "1m"}


def _substitute(expr: str) -> str:
    for name in sorted(_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, _VARIABLES[name])
    return expr


def _panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every Prometheus query, variables included."""
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable.get("datasource", {}).get("uid") == "prometheus":
            selector = re.fullmatch(r"label_values\((.+), \w+\)", variable["query"]["query"])
            assert selector is not None, variable
            found.append((f"variable {variable['name']}", selector.group(1)))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["uid"] == "prometheus":
                found.append((panel["title"], target["expr"]))
    return found


def _rule_expressions() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found.append((rule.get("record") or rule["alert"], rule["expr"]))
    return found


def test_every_expression_parses_and_the_panels_have_data(tmp_path: Path) -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    database = tmp_path / "app.db"
    sqlite3.connect(database).close()
    queue = f"exporter-render-{uuid.uuid4().hex[:8]}"
    env = {
        "EXPORTER_DEPENDENCIES": f"cache=redis://127.0.0.1:6379/0,db=sqlite://{database}",
        "EXPORTER_QUEUES": f"redis://127.0.0.1:6379/0/{queue}",
        "EXPORTER_PROBE_INTERVAL_SECONDS": "0.5",
        "EXPORTER_DEMO_RATE": "30",
        "EXPORTER_DEMO_ERROR_RATIO": "0.2",
    }
    with run_sidecar(tmp_path, [], {**env, "EXPORTER_DEMO": "true"}) as sidecar:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ROOT / "prometheus" / "rules" / "*.yml")],
            "scrape_configs": [scrape_config(sidecar.url.removeprefix("http://"), "demo")],
        }
        with run_prometheus(tmp_path, config) as prometheus:
            dashboards = {p.name: json.loads(p.read_text()) for p in DASHBOARDS.glob("*.json")}
            expressions = _rule_expressions() + [
                (f"{name}: {title}", expr)
                for name, dashboard in sorted(dashboards.items())
                for title, expr in _panel_queries(dashboard)
            ]
            assert len(expressions) > 60
            assert query(prometheus, "sum(rate(http_requests_total[1m])")[0] is not None
            failures = [
                f"{where}: {expr}\n    {error}"
                for where, expr in expressions
                if (error := query(prometheus, _substitute(expr))[0]) is not None
            ]
            assert failures == [], "expressions Prometheus refuses:\n" + "\n".join(failures)

            wanted = [
                (f"{name}: {title}", _substitute(expr))
                for name in WITH_DATA
                for title, expr in _panel_queries(dashboards[name])
                if title not in NO_DATA_EXPECTED
            ]
            deadline = time.monotonic() + 45.0
            while True:
                empty = [(w, e) for w, e in wanted if not query(prometheus, e)[1]]
                if not empty or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            assert empty == [], "panels without data:\n" + "\n".join(
                f"{w}: {e}" for w, e in empty)
            # The demo's 5xx reach the error-ratio rule: about 0.2 x 25 % of the traffic. Right
            # after the first scrapes the window may hold two samples a second apart with no 5xx
            # between them (about 1.5 a second expected): wait for one to fall in it.
            errors = 'service:http_request_errors:ratio_rate5m{service="demo"}'
            deadline = time.monotonic() + 20.0
            while True:
                _, ratio = query(prometheus, errors)
                value = float(ratio[0]["value"][1]) if ratio else 0.0
                if value > 0.0 or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            assert 0.0 < value < 0.2, ratio
            # Exemplar storage is on: the latency panel's dots carry the trace ids Grafana
            # links to the logs.
            now = time.time()
            exemplars = httpx.get(f"{prometheus}/api/v1/query_exemplars", params={
                "query": 'http_request_duration_seconds_bucket{service="demo"}',
                "start": now - 300, "end": now}, timeout=10.0).json()
            trace_ids = [e["labels"].get("trace_id") for series in exemplars["data"]
                         for e in series["exemplars"]]
            assert trace_ids and all(re.fullmatch(r"[0-9a-f]{32}", t or "") for t in trace_ids)
