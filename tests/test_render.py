"""`exporter render`: generated rules, promtool tests and dashboards follow thresholds.yaml."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.render import HEADER, render_files
from exporter.render.links import anchor
from exporter.thresholds import (
    DEFAULT_SLOW_REQUEST_SECONDS,
    load_thresholds,
    parse_thresholds,
)
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = load_thresholds(ROOT / "thresholds.yaml")


def _alerts(files: dict[str, str]) -> list[dict[str, object]]:
    document = yaml.safe_load(files["prometheus/rules/alerts.yml"])
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_committed_files_match_what_render_writes(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["render", "--check", "--out", str(ROOT)])
    assert status == 0, capsys.readouterr().err + "\nrun `exporter render` and commit the result"


def test_check_lists_a_drifted_file_and_render_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "thresholds.yaml").write_text((ROOT / "thresholds.yaml").read_text())
    assert main(["render", "--out", str(tmp_path)]) == 0
    assert main(["render", "--check", "--out", str(tmp_path)]) == 0
    host = tmp_path / "grafana" / "dashboards" / "host.json"
    host.write_text(host.read_text().replace('"Host"', '"Edited in the UI"'))
    (tmp_path / "prometheus" / "rules" / "recording.yml").unlink()
    capsys.readouterr()
    assert main(["render", "--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "grafana/dashboards/host.json" in err
    assert "prometheus/rules/recording.yml" in err
    assert "alerts.yml" not in err
    assert main(["render", "--out", str(tmp_path)]) == 0
    assert main(["render", "--check", "--out", str(tmp_path)]) == 0


def test_output_is_deterministic_and_every_file_names_the_command() -> None:
    first, second = render_files(THRESHOLDS), render_files(THRESHOLDS)
    assert first == second
    assert set(first) == {
        "prometheus/rules/recording.yml", "prometheus/rules/alerts.yml",
        "prometheus/tests/alerts_test.yml", "grafana/dashboards/service-overview.json",
        "grafana/dashboards/host.json", "grafana/dashboards/dependencies-queues.json",
        "grafana/dashboards/logs.json", "grafana/dashboards/alerts-errors.json",
        "grafana/dashboards/celery.json", "docs/signals.md",
    }
    for path, text in first.items():
        if path.endswith(".md"):
            assert f"<!-- {HEADER} Regenerate: exporter render -->" in text
        elif path.endswith(".json"):
            document = json.loads(text)
            assert document["description"] == HEADER
            assert text == json.dumps(document, indent=2, sort_keys=True) + "\n"
            ids = [p["id"] for p in document["panels"]]
            assert ids == list(range(1, len(ids) + 1))
        else:
            assert text.startswith(f"# {HEADER}\n"), path


def test_recording_rules_follow_the_naming_convention() -> None:
    document = yaml.safe_load(render_files(THRESHOLDS)["prometheus/rules/recording.yml"])
    names = [rule["record"] for group in document["groups"] for rule in group["rules"]]
    for name in names:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", name), name
    for expected in ("service:http_requests:rate5m", "service:http_request_errors:ratio_rate5m",
                     "service_route:http_request_duration_seconds:p95_5m",
                     "service:http_request_duration_seconds:p50_5m",
                     "service_route:http_request_duration_seconds:p99_5m"):
        assert expected in names


def test_one_alert_per_threshold_plus_the_stack_alerts() -> None:
    alerts = _alerts(render_files(THRESHOLDS))
    names = [a["alert"] for a in alerts]
    assert names == [t.alert for t in THRESHOLDS.items()] + [
        "TargetDown", "DependencyDown", "QueueBacklogGrowing", "LogShipperDroppingLines"]
    by_name = {a["alert"]: a for a in alerts}
    for threshold in THRESHOLDS.items():
        rule = by_name[threshold.alert]
        assert str(rule["expr"]).endswith(f"> {threshold.above!r}")
        assert rule["labels"] == {"severity": threshold.severity}
        assert rule["annotations"]["summary"] == threshold.summary  # type: ignore[index]
    assert "service:http_request_errors:ratio_rate5m" in str(by_name["HighErrorRate"]["expr"])
    # A task that fails is an error: the shipped Celery threshold is the error rate's.
    (error_rate,) = THRESHOLDS.for_signal("http_error_ratio")
    celery = by_name["CeleryTaskFailureRate"]
    assert celery["expr"] == (
        f"service_task:celery_task_failures:ratio_rate5m > {error_rate.above!r}")
    assert celery["labels"] == {"severity": error_rate.severity}


def test_every_alert_is_annotated_and_has_a_runbook_section() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    headings = {anchor(h) for h in re.findall(r"^## (.+)$", runbooks, re.MULTILINE)}
    for alert in _alerts(render_files(THRESHOLDS)):
        notes = alert["annotations"]
        assert isinstance(notes, dict)
        assert set(notes) == {"summary", "description", "runbook_url", "dashboard_url"}
        assert "{{ $value | humanize" in notes["description"], alert["alert"]
        assert "threshold is" in notes["description"], alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical")  # type: ignore[index]
        page, _, section = notes["runbook_url"].partition("#")
        assert page == "docs/runbooks.md" and section in headings, notes["runbook_url"]
        uid = re.search(r"/d/([a-z-]+)\?", notes["dashboard_url"])
        assert uid is not None
        dashboards = [json.loads(t) for p, t in render_files(THRESHOLDS).items()
                      if p.endswith(".json")]
        assert uid.group(1) in {d["uid"] for d in dashboards}


def test_a_changed_threshold_reaches_rules_tests_and_dashboards() -> None:
    text = (ROOT / "thresholds.yaml").read_text()
    changed = parse_thresholds(
        text.replace("above: 0.5\n", "above: 0.75\n").replace("rate_window: 5m", "rate_window: 30s")
    )
    files = render_files(changed)
    alerts = {a["alert"]: a for a in _alerts(files)}
    assert alerts["HighApiLatency"]["expr"] == (
        "service:http_request_duration_seconds:p95_30s > 0.75")
    assert "750 ms" in alerts["HighApiLatency"]["annotations"]["description"]  # type: ignore[index]
    assert "rate(http_requests_total[30s])" in files["prometheus/rules/recording.yml"]
    overview = json.loads(files["grafana/dashboards/service-overview.json"])
    p95 = next(p for p in overview["panels"] if p["title"] == "Latency p95 by route")
    assert p95["fieldConfig"]["defaults"]["thresholds"]["steps"][-1] == {
        "color": "red", "value": 0.75}
    logs = json.loads(files["grafana/dashboards/logs.json"])
    slow = next(p for p in logs["panels"] if p["title"] == "Slow requests")
    assert slow["targets"][0]["expr"].endswith('kind="access"} | json | duration_ms >= 750')


def test_without_an_api_latency_threshold_slow_requests_start_at_the_default() -> None:
    text = (ROOT / "thresholds.yaml").read_text()
    start = text.index("  api_latency:")
    end = text.index("\n  ", text.index("summary:", start)) + 1
    without = parse_thresholds(text[:start] + text[end:])
    assert without.for_signal("http_latency_p95_seconds") == []
    logs = json.loads(render_files(without)["grafana/dashboards/logs.json"])
    slow = next(p for p in logs["panels"] if p["title"] == "Slow requests")
    assert slow["targets"][0]["expr"].endswith(
        f"duration_ms >= {DEFAULT_SLOW_REQUEST_SECONDS * 1000:g}")


def test_stack_md_lists_each_dashboards_template_variables() -> None:
    text = (ROOT / "docs" / "stack.md").read_text()
    documented = {title: re.findall(r"`(\w+)`", variables) for title, variables in
                  re.findall(r"^\| \*([^*]+)\* \| (`.+`) \|$", text, re.MULTILINE)}
    boards = [json.loads(t) for p, t in render_files(THRESHOLDS).items() if p.endswith(".json")]
    assert documented == {
        board["title"]: [v["name"] for v in board["templating"]["list"]] for board in boards}


def test_render_refuses_a_bad_thresholds_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "thresholds.yaml").read_text().replace("rate_window: 5m",
                                                                   "rate_window: soon"))
    assert main(["render", "--thresholds", str(bad), "--out", str(tmp_path)]) == 2
    assert "render.rate_window" in capsys.readouterr().err
    assert not (tmp_path / "prometheus").exists()


def test_promtool_accepts_the_rules_and_their_tests_pass() -> None:
    promtool = require_binary("promtool", "prometheus")
    rules = sorted(str(p) for p in (ROOT / "prometheus" / "rules").glob("*.yml"))
    checked = subprocess.run([promtool, "check", "rules", *rules], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("SUCCESS") == 2
    # The generated tests, and those written by hand (they do not share the generator's errors).
    tests = [ROOT / "prometheus" / "tests" / name
             for name in ("alerts_test.yml", "handwritten_test.yml")]
    tested = subprocess.run([promtool, "test", "rules", *map(str, tests)],
                            capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == 2


@pytest.mark.parametrize(("right", "wrong", "caught"), [
    # A threshold that drifted from thresholds.yaml.
    ("system_cpu_usage_ratio > 0.8", "system_cpu_usage_ratio > 0.82", "HighCpuUsage"),
    # The log-shipper alert without Promtail's counter, or deaf to Alloy's first drop.
    (" or increase(promtail_dropped_entries_total[5m]) > 0", "",
     "LogShipperDroppingLines (promtail_dropped_entries_total)"),
    ("increase(loki_write_dropped_entries_total[5m]) > 0",
     "increase(loki_write_dropped_entries_total[5m]) > 1",
     "LogShipperDroppingLines (loki_write_dropped_entries_total)"),
])
def test_the_generated_promtool_tests_catch_a_wrong_rule(
    tmp_path: Path, right: str, wrong: str, caught: str
) -> None:
    promtool = require_binary("promtool", "prometheus")
    assert main(["render", "--thresholds", str(ROOT / "thresholds.yaml"),
                 "--out", str(tmp_path)]) == 0
    alerts = tmp_path / "prometheus" / "rules" / "alerts.yml"
    assert right in alerts.read_text()
    alerts.write_text(alerts.read_text().replace(right, wrong))
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "prometheus" / "tests" / "alerts_test.yml")],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert caught in result.stdout + result.stderr


def test_dashboards_use_the_provisioned_datasources_and_the_thresholds() -> None:
    provisioned = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())
    uids = {d["uid"] for d in provisioned["datasources"]}
    files = render_files(THRESHOLDS)
    boards = {p.rsplit("/", 1)[1]: json.loads(t) for p, t in files.items() if p.endswith(".json")}
    for name, board in boards.items():
        variables = [v["name"] for v in board["templating"]["list"]]
        assert variables[0] == "service", name
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] in uids, (name, panel["title"])
    assert [v["name"] for v in boards["service-overview.json"]["templating"]["list"]] == [
        "service", "route", "instance"]
    limits = {t.signal: t.above for t in THRESHOLDS.items()}
    lines = {
        ("host.json", "CPU usage"): limits["cpu_usage_ratio"],
        ("host.json", "Disk usage"): limits["disk_usage_ratio"],
        ("service-overview.json", "Error ratio (5xx)"): limits["http_error_ratio"],
        ("service-overview.json", "Latency p50 / p95 / p99"): limits["http_latency_p95_seconds"],
        ("dependencies-queues.json", "Redis round trip (PING)"): limits["redis_latency_seconds"],
    }
    for (name, title), value in lines.items():
        panel = next(p for p in boards[name]["panels"]
                     if p["title"] == title and p["type"] == "timeseries")
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["thresholds"]["steps"][-1]["value"] == value, title
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "line", title
    logs = boards["logs.json"]
    trace = next(p for p in logs["panels"] if "trace" in p["title"])
    assert trace["datasource"] == {"type": "loki", "uid": "loki"}
    assert '|= "$trace_id"' in trace["targets"][0]["expr"]
    # The shippers label their streams kind="app" or kind="access", nothing else.
    kinds = {kind for panel in logs["panels"] for target in panel.get("targets", [])
             for kind in re.findall(r'kind="(\w+)"', target["expr"])
             if target["datasource"]["uid"] == "loki"}
    assert kinds == {"access"}


def test_the_handwritten_promtool_tests_catch_a_rule_that_counts_4xx_as_errors(
    tmp_path: Path,
) -> None:
    promtool = require_binary("promtool", "prometheus")
    assert main(["render", "--thresholds", str(ROOT / "thresholds.yaml"),
                 "--out", str(tmp_path)]) == 0
    recording = tmp_path / "prometheus" / "rules" / "recording.yml"
    recording.write_text(recording.read_text().replace('status=~"5.."', 'status=~"[45].."'))
    shutil.copy(ROOT / "prometheus" / "tests" / "handwritten_test.yml",
                tmp_path / "prometheus" / "tests")
    handwritten = tmp_path / "prometheus" / "tests" / "handwritten_test.yml"
    result = subprocess.run([promtool, "test", "rules", str(handwritten)],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "ratio_rate5m * 100" in result.stdout + result.stderr
