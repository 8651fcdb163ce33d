"""End to end on real binaries: demo traffic -> Prometheus rules -> Alertmanager -> sidecar webhook.

The rules are rendered from a test thresholds file (the shipped one with `for: 5s` and a 10 s
rate window), so raising the demo's error share or slowing /demo/slow fires HighErrorRate and
HighApiLatency within seconds, and restoring the demo resolves them.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from exporter.cli import main
from exporter.thresholds import parse_thresholds
from tests.conftest import RunningServer, require_binary, run_sidecar
from tests.prometheus_stack import query, run_alertmanager, run_prometheus, scrape_config

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "e2e-demo"
DEADLINE = 90.0
CALM = {"error_ratio": 0.0, "slow_seconds": 0.05, "rate": 40.0}
TROUBLE = {"error_ratio": 1.0, "slow_seconds": 1.0, "rate": 40.0}  # 25 % errors, p95 ~ 0.9 s


def _test_thresholds(tmp_path: Path) -> Path:
    document = yaml.safe_load((ROOT / "thresholds.yaml").read_text())
    for threshold in document["thresholds"].values():
        threshold["for"] = "5s"
    document["render"]["rate_window"] = "10s"
    path = tmp_path / "thresholds.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _notifications(sidecar: RunningServer, token: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{sidecar.url}/api/v1/observability/alerts",
                      headers={"authorization": f"Bearer {token}"}, timeout=5.0)
    reply.raise_for_status()
    return list(reply.json()["notifications"])


def _wait_for(
    sidecar: RunningServer, token: str, status: str, names: set[str]
) -> dict[str, dict[str, Any]]:
    """The first `status` alert of each name in `names` that reaches the webhook."""
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for notification in _notifications(sidecar, token):
            for alert in notification["alerts"]:
                name = alert["labels"].get("alertname")
                if name in names and alert["status"] == status:
                    found.setdefault(name, alert)
        if set(found) == names:
            return found
        time.sleep(1.0)
    raise AssertionError(f"no {status} notification for {names - set(found)} within "
                         f"{DEADLINE:.0f} s; got {_notifications(sidecar, token)}")


def test_alerts_fire_and_resolve_through_alertmanager_to_the_webhook(tmp_path: Path) -> None:
    require_binary("prometheus", "prometheus")
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    thresholds_file = _test_thresholds(tmp_path)
    out = tmp_path / "stack"
    out.mkdir()
    assert main(["render", "--thresholds", str(thresholds_file), "--out", str(out)]) == 0
    thresholds = {t.alert: t for t in parse_thresholds(thresholds_file.read_text()).items()}
    token = "e2e-" + uuid.uuid4().hex
    (tmp_path / "token").write_text(token)
    env = {"EXPORTER_API_TOKEN": token, "EXPORTER_SERVICE_NAME": SERVICE,
           "EXPORTER_DEMO_RATE": "40", "EXPORTER_DEMO_ERROR_RATIO": "0",
           "EXPORTER_DEMO_SLOW_SECONDS": "0.05"}
    with run_sidecar(tmp_path, [], {**env, "EXPORTER_DEMO": "true"}) as sidecar:
        receiver = {"url": f"{sidecar.url}/api/v1/observability/alerts/webhook",
                    "send_resolved": True,
                    "http_config": {"authorization": {
                        "type": "Bearer", "credentials_file": str(tmp_path / "token")}}}
        am_config = {
            "route": {"receiver": "sidecar", "group_by": ["alertname", "service"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "sidecar", "webhook_configs": [receiver]}],
        }
        with run_alertmanager(tmp_path, am_config) as alertmanager:
            prom_config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(out / "prometheus" / "rules" / "*.yml")],
                "alerting": {"alertmanagers": [{"static_configs": [
                    {"targets": [alertmanager.removeprefix("http://")]}]}]},
                "scrape_configs": [scrape_config(sidecar.url.removeprefix("http://"), SERVICE)],
            }
            with run_prometheus(tmp_path, prom_config) as prometheus:
                deadline = time.monotonic() + 30.0
                while not query(prometheus, f'service:http_requests:rate10s{{service="{SERVICE}"}}'
                                 " > 0")[1]:
                    assert time.monotonic() < deadline, "no request rate after 30 s"
                    time.sleep(0.5)

                httpx.put(f"{sidecar.url}/demo/config", json=TROUBLE).raise_for_status()
                firing = _wait_for(sidecar, token, "firing", {"HighErrorRate", "HighApiLatency"})
                for name, alert in firing.items():
                    threshold = thresholds[name]
                    assert alert["labels"]["severity"] == threshold.severity
                    assert alert["labels"]["service"] == SERVICE
                    notes = alert["annotations"]
                    assert notes["summary"] == threshold.summary
                    assert SERVICE in notes["description"]
                    assert notes["runbook_url"] == f"docs/runbooks.md#{name.lower()}"
                    assert notes["dashboard_url"].endswith(f"?var-service={SERVICE}")
                assert "the threshold is 5 % for 5s" in firing["HighErrorRate"]["annotations"][
                    "description"]
                assert "the threshold is 500 ms for 5s" in firing["HighApiLatency"][
                    "annotations"]["description"]

                httpx.put(f"{sidecar.url}/demo/config", json=CALM).raise_for_status()
                resolved = _wait_for(sidecar, token, "resolved",
                                     {"HighErrorRate", "HighApiLatency"})
                for name, alert in resolved.items():
                    assert alert["labels"]["service"] == SERVICE
                    assert alert["ends_at"] is not None
                    assert alert["fingerprint"] == firing[name]["fingerprint"]
