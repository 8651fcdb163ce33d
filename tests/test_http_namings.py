"""Rules and dashboards read every HTTP naming: the kit's default names, the kit's `semconv`
names, and FastAPI's own telemetry through opentelemetry-exporter-prometheus with no kit
middleware (tests/namings_apps.py).

Each naming's scrape passes `promtool check metrics`. One real Prometheus scrapes the three
(one `service` each, every second) with the committed recording and alerting rules: every
recording rule of the HTTP group yields a series for each service, and every HTTP panel of the
provisioned dashboards (its PromQL with the template variables substituted, `$service` set to
that service) returns data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.config import Settings, SettingsError, load_settings
from exporter.config.defaults import DEFAULT_BUCKETS
from exporter.signals import HTTP_RECORDING_GROUP
from tests.asgi import requests, serve_in_thread
from tests.conftest import require_binary
from tests.namings_apps import NAMINGS, shop
from tests.prometheus_stack import query, run_prometheus
from tests.test_watch_engines import sidecar as engines_sidecar
from tests.test_watch_targets import API, sidecar, wait_for

ROOT = Path(__file__).resolve().parent.parent
TRAFFIC = [("GET", "/items/1"), ("GET", "/items/2"), ("GET", "/slow"), ("GET", "/boom"),
           ("GET", "/nope")]
# Grafana's values for the variables: "All" is `.+` (render.grafana.query_variable).
VARIABLES = {"$__rate_interval": "1m", "$instance": ".+", "$route": ".+", "$task": ".+"}


def _metrics_path(naming: str) -> str:
    return "/metrics/" if naming == "fastapi" else "/metrics"


def _http_panels() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every panel query that reads HTTP metrics."""
    found = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                if "http_" in expr and target.get("datasource", {}).get("type") != "loki":
                    found.append((path.stem, panel["title"], expr))
    return found


def _recording_rules() -> list[str]:
    document = yaml.safe_load((ROOT / "prometheus" / "rules" / "recording.yml").read_text())
    group = next(g for g in document["groups"] if g["name"] == HTTP_RECORDING_GROUP)
    return [rule["record"] for rule in group["rules"]]


def _substituted(expr: str, service: str) -> str:
    for name, value in {**VARIABLES, "$service": re.escape(service)}.items():
        expr = expr.replace(name, value)
    return expr


def test_the_naming_is_validated_naming_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPORTER_HTTP_METRICS", "otel")
    with pytest.raises(SettingsError, match=r"EXPORTER_HTTP_METRICS.*'otel'"):
        load_settings()
    monkeypatch.setenv("EXPORTER_HTTP_METRICS", "SemConv")
    settings = load_settings()
    assert settings.http_metrics == "semconv"
    assert settings.http_buckets[-4:] == [2.5, 5.0, 7.5, 10.0]  # the conventions' buckets
    # Buckets set explicitly win over the naming's own; the default naming keeps today's.
    assert Settings(http_metrics="semconv", histogram_buckets=[0.1, 1]).http_buckets == [0.1, 1]
    default = Settings(http_metrics="default")
    assert default.http_buckets == default.histogram_buckets == list(DEFAULT_BUCKETS)


@pytest.mark.parametrize("naming", NAMINGS)
def test_promtool_check_metrics_is_clean_on_each_naming(naming: str) -> None:
    promtool = require_binary("promtool", "prometheus")
    app = shop(naming)
    requests(app, TRAFFIC, raise_app_exceptions=False)
    text = requests(app, [("GET", _metrics_path(naming))])[0].text
    assert "http_server_request_duration_seconds_bucket{" in text or naming == "default"
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def _drive(urls: list[str], stop: threading.Event) -> None:
    """A few requests a second to every app, until `stop`."""
    with httpx.Client(timeout=5.0) as client:
        while not stop.is_set():
            for url in urls:
                for method, path in TRAFFIC:
                    try:
                        client.request(method, url + path)
                    except httpx.TransportError:
                        pass  # uvicorn drops the connection after an app's exception
            stop.wait(0.2)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus scraping the three apps (service = naming) with the committed rules, while
    they get traffic."""
    require_binary("prometheus", "prometheus")
    tmp = tmp_path_factory.mktemp("namings")
    for name in ("recording.yml", "alerts.yml"):
        shutil.copy(ROOT / "prometheus" / "rules" / name, tmp / name)
    stop = threading.Event()
    with ExitStack() as stack:
        urls = {naming: stack.enter_context(serve_in_thread(shop(naming))) for naming in NAMINGS}
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp / "recording.yml"), str(tmp / "alerts.yml")],
            "scrape_configs": [{
                "job_name": f"app-{naming}", "metrics_path": _metrics_path(naming),
                "static_configs": [{"targets": [url.removeprefix("http://")],
                                    "labels": {"service": naming}}],
            } for naming, url in urls.items()],
        }
        url = stack.enter_context(run_prometheus(tmp, config))
        driver = threading.Thread(target=_drive, args=(list(urls.values()), stop), daemon=True)
        driver.start()
        stack.callback(driver.join, 10)
        stack.callback(stop.set)
        yield url


def _until_data(prometheus: str, expr: str, timeout: float = 45.0) -> list[Any]:
    """The query's result once it has one (rules need a few evaluations), else the last."""
    deadline = time.monotonic() + timeout
    while True:
        error, result = query(prometheus, expr)
        assert error is None, (expr, error)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.mark.parametrize("naming", NAMINGS)
def test_every_http_recording_rule_has_a_series_for_each_naming(
    prometheus: str, naming: str
) -> None:
    rules = _recording_rules()
    assert len(rules) >= 14
    empty = [r for r in rules if not _until_data(prometheus, f'{r}{{service="{naming}"}}')]
    assert empty == []
    # The route variable reads the per-route rule: `route` under every naming.
    routes = {s["metric"].get("route") for s in _until_data(
        prometheus, f'service_route:http_requests:rate5m{{service="{naming}"}}')}
    assert {"/items/{item_id}", "/boom", "/slow"} <= routes


@pytest.mark.parametrize("naming", NAMINGS)
def test_every_http_panel_returns_data_for_each_naming(prometheus: str, naming: str) -> None:
    panels = _http_panels()
    titles = {title for _, title, _ in panels}
    assert {"Requests per second", "Requests in progress", "Responses by route and status",
            "Latency p95 by route"} <= titles
    empty = [(board, title, expr) for board, title, expr in panels
             if not _until_data(prometheus, _substituted(expr, naming))]
    assert empty == []


def test_the_sidecar_reads_each_naming_from_its_scrapes(tmp_path: Path) -> None:
    """The in-process history and alerts (the sidecar watching targets) read the same signals
    from each naming: requests per second, and one request in five failing."""
    stop = threading.Event()
    with ExitStack() as stack:
        urls = {naming: stack.enter_context(serve_in_thread(shop(naming))) for naming in NAMINGS}
        targets = [url + _metrics_path(naming) for naming, url in urls.items()]
        client = stack.enter_context(sidecar(tmp_path, targets))
        found = wait_for(client, f"{API}/targets", lambda b: all(t["up"] for t in b["targets"]))
        driver = threading.Thread(target=_drive, args=(list(urls.values()), stop), daemon=True)
        driver.start()
        stack.callback(driver.join, 10)
        stack.callback(stop.set)
        for target in found["targets"]:
            # /boom is one of the five paths: the 5xx share, whatever the request rate (once
            # the window no longer holds the series' first samples, see docs/signals.md).
            current = wait_for(
                client, f"{API}/metrics?instance={target['instance']}",
                lambda b: (b["current"].get("qps") or 0) > 0
                and abs((b["current"].get("error_rate") or 0) - 0.2) <= 0.05, timeout=30.0)
            assert current["current"]["instance"] == target["instance"]


@pytest.mark.parametrize("naming", ["default", "semconv"])
def test_the_latency_panel_s_exemplars_carry_trace_ids_under_the_kit_s_namings(
    prometheus: str, naming: str
) -> None:
    """The exemplar query of the latency panel finds the kit's trace ids under either naming
    (opentelemetry-exporter-prometheus writes no exemplars)."""
    expr = next(expr for _, title, expr in _http_panels()
                if title == "Latency p50 / p95 / p99" and "rate(" in expr)
    params = {"query": _substituted(expr, naming)}
    deadline = time.monotonic() + 30.0
    while True:
        now = time.time()
        reply = httpx.get(f"{prometheus}/api/v1/query_exemplars",
                          params={**params, "start": now - 300, "end": now}, timeout=10.0)
        assert reply.status_code == 200, reply.text
        trace_ids = [e["labels"].get("trace_id") for series in reply.json()["data"]
                     for e in series["exemplars"]]
        if trace_ids or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert trace_ids and all(re.fullmatch(r"[0-9a-f]{32}", t or "") for t in trace_ids)


@pytest.mark.parametrize("naming", NAMINGS)
def test_the_sidecar_over_prometheus_reads_each_naming(
    prometheus: str, naming: str, tmp_path: Path
) -> None:
    """The over-Prometheus mode runs each signal's flat PromQL for the service's selector."""
    with engines_sidecar(tmp_path, naming, prometheus_url=prometheus,
                         service_selector=f'service="{naming}"') as client:
        current = wait_for(client, f"{API}/metrics", lambda b: (b["current"].get("qps") or 0) > 0
                           and abs((b["current"].get("error_rate") or 0) - 0.2) <= 0.05,
                           timeout=30.0)["current"]
        assert current["latency_seconds"]["p95"] > 0
