"""One entry in the catalogue is all a signal needs: rules, promtool tests, dashboards, docs,
in-process alerts, health and the API find it there, and no other module changes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client import Gauge as PromGauge

from exporter.app import create_app
from exporter.config import load_settings
from exporter.render import render_files
from exporter.signals import CATALOGUE, Display, Fixture, Gauge, Metric, Signal
from exporter.signals.rules import recording_groups
from exporter.thresholds import parse_thresholds
from tests.asgi import serve_in_process
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
# A gauge an app could expose about its own business: how long the oldest order has waited.
BACKLOG = Signal(
    "order_backlog_seconds", "Order backlog", "seconds", "orders",
    Gauge(Metric("orders_oldest_wait_seconds"), ("shop",)),
    "How long the oldest unshipped order of a shop has waited.",
    "The oldest order of shop {{ $labels.shop }} has waited {{ $value | humanizeDuration }}",
    Display("dependencies", "Order backlog", "{{shop}}"), Fixture({"shop": "eu"}),
)
THRESHOLDS = (ROOT / "thresholds.yaml").read_text() + """
"""
ENTRY = """
  order_backlog:
    alert: OrdersWaiting
    signal: order_backlog_seconds
    above: 30
    for: 0s
    severity: critical
    summary: Orders wait too long
"""


def _with_entry(text: str) -> str:
    return text.replace("\nthresholds:\n", "\nthresholds:\n" + ENTRY.lstrip("\n"), 1)


def test_an_unknown_signal_is_refused_by_name() -> None:
    try:
        parse_thresholds(_with_entry(THRESHOLDS), "t.yaml")
    except ValueError as exc:
        assert "thresholds.order_backlog.signal: unknown signal 'order_backlog_seconds'" in str(
            exc)
        assert "http_error_ratio" in str(exc)  # the known ones are listed
    else:
        raise AssertionError("an unknown signal was accepted")


def test_a_signal_added_to_the_catalogue_reaches_the_generated_files(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    with CATALOGUE.added(BACKLOG):
        thresholds = parse_thresholds(_with_entry(THRESHOLDS))
        files = render_files(thresholds)
        assert "order_backlog_seconds" not in str(recording_groups(CATALOGUE, "5m"))  # a gauge
    rules = yaml.safe_load(files["prometheus/rules/alerts.yml"])["groups"][0]["rules"]
    rule = next(r for r in rules if r["alert"] == "OrdersWaiting")
    assert rule["expr"] == "orders_oldest_wait_seconds > 30.0"
    assert rule["annotations"]["description"].startswith(
        "The oldest order of shop {{ $labels.shop }} has waited {{ $value | humanizeDuration }}")
    tests = yaml.safe_load(files["prometheus/tests/alerts_test.yml"])["tests"]
    assert any(t["name"].startswith("OrdersWaiting:") for t in tests)
    board = json.loads(files["grafana/dashboards/dependencies-queues.json"])
    panel = next(p for p in board["panels"] if p["title"] == "Order backlog")
    assert "orders_oldest_wait_seconds{" in panel["targets"][0]["expr"]
    assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 30
    assert "## `order_backlog_seconds`" in files["docs/signals.md"]
    # The generated promtool test of the new alert passes against the generated rules.
    for relative, text in files.items():
        if relative.startswith("prometheus/"):
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / relative).write_text(text)
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "prometheus/tests/alerts_test.yml")],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_signal_added_to_the_catalogue_is_watched_in_process(tmp_path: Path) -> None:
    thresholds_file = tmp_path / "thresholds.yaml"
    thresholds_file.write_text(_with_entry(THRESHOLDS))
    registry = CollectorRegistry()
    wait = PromGauge("orders_oldest_wait_seconds", "Oldest order's wait.", ["shop"],
                     registry=registry)
    wait.labels("eu").set(45.0)
    wait.labels("us").set(3.0)
    settings = load_settings(
        thresholds_file=thresholds_file, history_interval_seconds=0.05, log_stdout=False,
        log_dir=tmp_path / "logs", data_dir=tmp_path / "data")
    with CATALOGUE.added(BACKLOG), serve_in_process(create_app(settings, registry)) as client:
        api = "/api/v1/observability"
        deadline = time.monotonic() + 10
        while not client.get(f"{api}/alerts").json()["firing"]:
            assert time.monotonic() < deadline, "OrdersWaiting never fired"
            time.sleep(0.05)
        (alert,) = client.get(f"{api}/alerts").json()["firing"]
        metrics = client.get(f"{api}/metrics").json()["current"]["signals"]
        health = client.get(f"{api}/health/full").json()
        tiles = {s["id"]: s for s in client.get(f"{api}/dashboard").json()["series"]}
    assert (alert["alert"], alert["labels"], alert["value"]) == (
        "OrdersWaiting", {"shop": "eu"}, 45.0)
    assert metrics["order_backlog_seconds"] == {"eu": 45.0, "us": 3.0}
    orders = next(c for c in health["checks"] if c["name"] == "orders")
    assert orders["status"] == "unhealthy"  # a critical alert firing
    assert orders["reason"] == "OrdersWaiting firing (shop=eu): Order backlog 45 s > 30 s"
    assert tiles["order_backlog_seconds:eu"]["threshold"] == 30
