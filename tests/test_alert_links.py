"""The links alerts carry (runbook_url, dashboard_url) come from render.grafana_url and
render.runbook_url, absolute, the same in prometheus/rules/ (compose, plain Prometheus) and in
the PrometheusRule (Kubernetes): promtool checks the annotations Prometheus would send."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.thresholds import parse_thresholds
from tests.conftest import require_binary
from tests.kubernetes_objects import ROOT, committed_objects, load_all, rule_files

GRAFANA = "https://grafana.example.org/ops"
RUNBOOKS = "https://git.example.org/team/shop/blob/main/docs/runbooks.md"
# Worked out by hand: an error ratio of 10 % on service shop fires HighErrorRate, whose
# annotations point at the service dashboard filtered to shop, and at the runbook's section.
HANDWRITTEN = {
    "evaluation_interval": "15s",
    "tests": [{
        "interval": "15s",
        "input_series": [
            {"series": 'http_requests_total{job="exporter",instance="a:8000",service="shop",'
                       'method="GET",route="/items",status="200"}', "values": "0+90x30"},
            {"series": 'http_requests_total{job="exporter",instance="a:8000",service="shop",'
                       'method="GET",route="/items",status="500"}', "values": "0+10x30"},
        ],
        "alert_rule_test": [{
            "eval_time": "6m", "alertname": "HighErrorRate",
            "exp_alerts": [{
                "exp_labels": {"service": "shop", "severity": "critical"},
                "exp_annotations": {
                    "summary": "More than 5 % of HTTP responses are 5xx errors",
                    "description": "10% of the HTTP responses of shop over 5m were 5xx; the "
                                   "threshold is 5 % for 5m.",
                    "runbook_url": f"{RUNBOOKS}#higherrorrate",
                    "dashboard_url": f"{GRAFANA}/d/exporter-service?var-service=shop",
                },
            }],
        }],
    }],
}


def _tree(tmp_path: Path) -> Path:
    """A repository copy whose thresholds.yaml sets absolute links."""
    text = (ROOT / "thresholds.yaml").read_text()
    text = text.replace("grafana_url: http://localhost:3000", f"grafana_url: {GRAFANA}")
    text = text.replace("runbook_url: docs/runbooks.md", f"runbook_url: {RUNBOOKS}")
    assert parse_thresholds(text).render.runbook_url == RUNBOOKS
    (tmp_path / "thresholds.yaml").write_text(text)
    shutil.copytree(ROOT / "alertmanager" / "templates", tmp_path / "alertmanager" / "templates")
    for target in ("stack", "kubernetes"):
        assert main(["render", "--target", target, "--out", str(tmp_path)]) == 0
    return tmp_path


def _rules(tree: Path, target: str) -> list[str]:
    if target == "stack":
        return [str(p) for p in sorted((tree / "prometheus" / "rules").glob("*.yml"))]
    (rule,) = load_all((tree / "deploy" / "kubernetes" / "prometheusrule.yaml").read_text())
    return [str(rule_files(rule, tree))]


@pytest.mark.parametrize("target", ["stack", "kubernetes"])
def test_promtool_sees_absolute_links_from_the_settings(tmp_path: Path, target: str) -> None:
    promtool = require_binary("promtool", "prometheus")
    tree = _tree(tmp_path)
    rules = _rules(tree, target)
    generated = yaml.safe_load((tree / "prometheus" / "tests" / "alerts_test.yml").read_text())
    handwritten = {**HANDWRITTEN, "rule_files": rules,
                   "group_eval_order": generated["group_eval_order"]}
    files = []
    for name, document in (("generated.yml", {**generated, "rule_files": rules}),
                           ("handwritten.yml", handwritten)):
        (tree / name).write_text(yaml.safe_dump(document, sort_keys=False))
        files.append(str(tree / name))
    result = subprocess.run([promtool, "test", "rules", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    annotations = [a["exp_annotations"] for t in generated["tests"]
                   for c in t["alert_rule_test"] for a in c["exp_alerts"]]
    assert annotations, "the generated tests check no annotation"
    for notes in annotations:
        assert notes["dashboard_url"].startswith(f"{GRAFANA}/d/exporter-")
        assert re.fullmatch(re.escape(RUNBOOKS) + r"#[a-z]+", notes["runbook_url"])


def test_the_handwritten_case_fails_on_a_relative_link(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    tree = _tree(tmp_path)
    alerts = tree / "prometheus" / "rules" / "alerts.yml"
    alerts.write_text(alerts.read_text().replace(RUNBOOKS, "docs/runbooks.md"))
    document = {**HANDWRITTEN, "rule_files": _rules(tree, "stack")}
    (tree / "handwritten.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(tree / "handwritten.yml")],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "docs/runbooks.md#higherrorrate" in result.stdout + result.stderr


def test_the_committed_links_follow_the_shipped_settings() -> None:
    # The shipped file keeps the repository path (docs/stack.md, "Links in alerts"); Grafana's
    # address is compose's GF_SERVER_ROOT_URL default, so the dashboard links open there.
    thresholds = parse_thresholds((ROOT / "thresholds.yaml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    root_url = compose["services"]["grafana"]["environment"]["GF_SERVER_ROOT_URL"]
    assert root_url == f"${{GRAFANA_EXTERNAL_URL:-{thresholds.render.grafana_url}}}"
    rules = committed_objects()["prometheusrule.yaml"]["spec"]["groups"][-1]["rules"]
    for rule in rules:
        notes = rule["annotations"]
        assert notes["dashboard_url"].startswith(f"{thresholds.render.grafana_url}/d/")
        assert notes["runbook_url"].startswith(f"{thresholds.render.runbook_url}#")


def test_render_warns_about_a_relative_runbook_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "thresholds.yaml", tmp_path)
    assert main(["render", "--out", str(tmp_path)]) == 0
    assert "render.runbook_url is the path 'docs/runbooks.md'" in capsys.readouterr().err
    _tree(tmp_path)
    assert "runbook_url" not in capsys.readouterr().err


@pytest.mark.parametrize(("key", "value"), [
    ("grafana_url", "grafana.example.org"), ("grafana_url", "https://grafana.example.org/"),
    ("runbook_url", "ftp://files.example.org/runbooks.md"),
    ("runbook_url", "https:///runbooks.md"),
])
def test_a_link_setting_that_cannot_work_is_refused(key: str, value: str) -> None:
    text = (ROOT / "thresholds.yaml").read_text()
    text = re.sub(rf"^  {key}: .*$", f"  {key}: {value}", text, flags=re.M)
    with pytest.raises(Exception, match=f"render.{key}"):
        parse_thresholds(text)
