"""`exporter render --target kubernetes`: deploy/kubernetes/ follows thresholds.yaml, every
object passes its schema, kustomize renders it, and its rules pass the same promtool tests as
prometheus/rules/."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pydantic
import pytest
import yaml

from exporter.cli import main
from exporter.config import Settings, env_name
from exporter.render.kubernetes import kubernetes_files
from exporter.thresholds import load_thresholds, parse_thresholds
from tests.conftest import require_binary
from tests.kubernetes_objects import (
    DEPLOY,
    ROOT,
    committed_objects,
    load_all,
    rule_files,
    validate,
)

THRESHOLDS = load_thresholds(ROOT / "thresholds.yaml")
TEMPLATES = {p.name: p.read_text() for p in (ROOT / "alertmanager" / "templates").glob("*.tmpl")}
EXPECTED_KINDS = {
    "monitoring.coreos.com/v1/PrometheusRule": 1,
    "monitoring.coreos.com/v1/ServiceMonitor": 1,
    "monitoring.coreos.com/v1/PodMonitor": 1,
    "monitoring.coreos.com/v1alpha1/AlertmanagerConfig": 1,
    "v1/ConfigMap": 8, "apps/v1/Deployment": 1, "v1/Service": 1,
    "networking.k8s.io/v1/NetworkPolicy": 1,
}


def _with_options(**kubernetes: Any) -> dict[str, dict[str, Any]]:
    """The objects rendered with `render.kubernetes` options changed (file name -> object)."""
    text = (ROOT / "thresholds.yaml").read_text()
    data = yaml.safe_load(text)
    data["render"].setdefault("kubernetes", {}).update(kubernetes)
    files = kubernetes_files(parse_thresholds(yaml.safe_dump(data)), TEMPLATES)
    return {path.rsplit("/", 1)[1]: yaml.safe_load(body) for path, body in files.items()}


def test_committed_files_match_what_render_writes(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["render", "--target", "kubernetes", "--check", "--out", str(ROOT)])
    assert status == 0, capsys.readouterr().err + "\nrun `exporter render --target kubernetes`"


def test_check_lists_a_drifted_object_and_render_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "thresholds.yaml", tmp_path)
    shutil.copytree(ROOT / "alertmanager" / "templates", tmp_path / "alertmanager" / "templates")
    args = ["render", "--target", "kubernetes", "--out", str(tmp_path)]
    assert main(args) == 0
    assert not (tmp_path / "prometheus").exists()  # the stack's files are another target's
    rule = tmp_path / "deploy" / "kubernetes" / "prometheusrule.yaml"
    rule.write_text(rule.read_text().replace("> 0.8\n", "> 0.9\n"))
    capsys.readouterr()
    assert main([*args, "--check"]) == 1
    assert "deploy/kubernetes/prometheusrule.yaml" in capsys.readouterr().err
    assert main(args) == 0 and main([*args, "--check"]) == 0


def test_kubernetes_needs_the_alertmanager_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "thresholds.yaml", tmp_path)
    assert main(["render", "--target", "kubernetes", "--out", str(tmp_path)]) == 2
    assert "alertmanager/templates/*.tmpl" in capsys.readouterr().err


def test_every_object_passes_its_schema() -> None:
    objects = committed_objects()
    kinds = Counter(validate(obj) for obj in objects.values())
    assert kinds == EXPECTED_KINDS
    assert sum(kinds.values()) == len(objects) == 15
    for name, obj in objects.items():
        assert obj["metadata"]["namespace"] == "monitoring", name
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "exporter", name


@pytest.mark.parametrize(("file", "path", "typo"), [
    ("servicemonitor.yaml", ("spec", "endpoints", 0), "portt"),
    ("podmonitor.yaml", ("spec", "podMetricsEndpoints", 0), "portt"),
    ("prometheusrule.yaml", ("spec", "groups", 0, "rules", 0), "severity"),
    ("alertmanagerconfig.yaml", ("spec", "receivers", 1), "slackConfig"),
    ("alertmanagerconfig.yaml", ("spec", "route"), "match"),
    ("sidecar-deployment.yaml", ("spec", "template", "spec", "containers", 0), "imagee"),
    ("sidecar-service.yaml", ("spec",), "selectr"),
    ("sidecar-networkpolicy.yaml", ("spec", "ingress", 0), "form"),
    ("grafana-datasources.yaml", (), "dat"),
])
def test_a_misspelt_field_is_refused(file: str, path: tuple[Any, ...], typo: str) -> None:
    obj = copy.deepcopy(committed_objects()[file])
    where = obj
    for step in path:
        where = where[step]
    where[typo] = "x"
    with pytest.raises((pydantic.ValidationError, kubernetes_validate.ValidationError),
                       match=typo):
        validate(obj)


@pytest.mark.parametrize(("mutate", "message"), [
    # Coercion refused: the API server would refuse a string where a boolean belongs.
    (lambda s: s["receivers"][0]["webhookConfigs"][0].update(sendResolved="yes"), "sendResolved"),
    # A secret written inline instead of referenced.
    (lambda s: s["receivers"][1]["slackConfigs"][0].update(apiURL="https://hooks.example"),
     "apiURL"),
    # Child routes are free-form in the CRD: each is checked as a Route.
    (lambda s: s["route"]["routes"][0]["matchers"][0].update(matchType="=="), "matchType"),
    (lambda s: s["route"]["routes"][1].update(receiver="pager"), "'pager' not found"),
])
def test_the_alertmanager_config_checks_catch_mistakes(mutate: Any, message: str) -> None:
    obj = copy.deepcopy(committed_objects()["alertmanagerconfig.yaml"])
    mutate(obj["spec"])
    with pytest.raises((pydantic.ValidationError, AssertionError), match=message):
        validate(obj)


def test_kustomize_renders_the_listed_objects(tmp_path: Path) -> None:
    kubectl = require_binary("kubectl", "kubectl")
    # No cluster and no kubeconfig: kustomize works offline.
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "none")}
    result = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    rendered = load_all(result.stdout)
    for obj in rendered:
        validate(obj)
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    objects = committed_objects()
    assert sorted((o["kind"], o["metadata"]["name"]) for o in rendered) == sorted(
        (objects[f]["kind"], objects[f]["metadata"]["name"]) for f in listed)
    assert set(objects) - set(listed) == {"podmonitor.yaml"}  # never both monitors


def test_the_prometheus_rule_holds_the_same_groups_as_prometheus_rules() -> None:
    groups = committed_objects()["prometheusrule.yaml"]["spec"]["groups"]
    files = [yaml.safe_load((ROOT / "prometheus" / "rules" / n).read_text())["groups"]
             for n in ("recording.yml", "alerts.yml")]
    assert groups == files[0] + files[1]


def _promtool_tests(tmp_path: Path, rules: Path) -> subprocess.CompletedProcess[str]:
    """prometheus/tests/*.yml, unchanged but for rule_files, which point at `rules`."""
    tests = []
    for name in ("alerts_test.yml", "handwritten_test.yml"):
        document = yaml.safe_load((ROOT / "prometheus" / "tests" / name).read_text())
        document["rule_files"] = [str(rules)]
        path = tmp_path / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        tests.append(str(path))
    promtool = require_binary("promtool", "prometheus")
    return subprocess.run([promtool, "test", "rules", *tests], capture_output=True, text=True)


def test_the_rules_inside_pass_promtool_and_the_same_tests(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    rule = committed_objects()["prometheusrule.yaml"]
    rules = rule_files(rule, tmp_path)
    checked = subprocess.run([promtool, "check", "rules", str(rules)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    count = sum(len(group["rules"]) for group in rule["spec"]["groups"])
    assert f"SUCCESS: {count} rules found" in checked.stdout
    tested = _promtool_tests(tmp_path, rules)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == 2


def test_the_tests_catch_a_wrong_rule_inside_the_prometheus_rule(tmp_path: Path) -> None:
    rule = committed_objects()["prometheusrule.yaml"]
    alerts = rule["spec"]["groups"][-1]["rules"]
    cpu = next(r for r in alerts if r["alert"] == "HighCpuUsage")
    cpu["expr"] = cpu["expr"].replace("> 0.8", "> 0.82")
    tested = _promtool_tests(tmp_path, rule_files(rule, tmp_path))
    assert tested.returncode != 0
    assert "HighCpuUsage" in tested.stdout + tested.stderr


def test_the_sidecar_reads_settings_that_exist_and_secrets_from_the_secret() -> None:
    objects = committed_objects()
    (container,) = objects["sidecar-deployment.yaml"]["spec"]["template"]["spec"]["containers"]
    fields = {env_name(name) for name in Settings.model_fields}
    env = {e["name"]: e for e in container["env"]}
    assert set(env) - fields == set(), "not settings of the sidecar"
    assert {"EXPORTER_PROMETHEUS_URL", "EXPORTER_SERVICE_SELECTOR", "EXPORTER_ALERTMANAGER_URL",
            "EXPORTER_LOKI_URL", "EXPORTER_API_TOKEN"} <= set(env)
    assert env["EXPORTER_SERVICE_SELECTOR"]["value"] == 'service="app"'
    for name in ("EXPORTER_API_TOKEN", "EXPORTER_PROMETHEUS_PASSWORD",
                 "EXPORTER_PROMETHEUS_BEARER_TOKEN", "EXPORTER_LOKI_PASSWORD"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "exporter"
    assert env["EXPORTER_API_TOKEN"]["valueFrom"]["secretKeyRef"].get("optional") is None
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 9480, "protocol": "TCP"}]
    service = objects["sidecar-service.yaml"]["spec"]
    assert service["selector"] == objects["sidecar-deployment.yaml"]["spec"]["selector"][
        "matchLabels"] == objects["sidecar-networkpolicy.yaml"]["spec"]["podSelector"][
        "matchLabels"]
    assert service["ports"][0]["port"] == 9480


def test_monitors_scrape_the_apps_port_and_path_and_label_the_service() -> None:
    objects = committed_objects()
    for file, key in (("servicemonitor.yaml", "endpoints"),
                      ("podmonitor.yaml", "podMetricsEndpoints")):
        spec = objects[file]["spec"]
        (endpoint,) = spec[key]
        assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
        assert endpoint["relabelings"] == [
            {"action": "replace", "targetLabel": "service", "replacement": "app"}]
        assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": "app"}}
        assert objects[file]["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_render_options_reach_the_objects() -> None:
    changed = _with_options(release="", monitor="pod", network_policy=False, app="shop",
                            app_port="web", metrics_path="/internal/metrics", loki_url="")
    for file in ("prometheusrule.yaml", "servicemonitor.yaml", "podmonitor.yaml"):
        assert "release" not in changed[file]["metadata"]["labels"]
    (endpoint,) = changed["podmonitor.yaml"]["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("web", "/internal/metrics")
    listed = changed["kustomization.yaml"]["resources"]
    assert "podmonitor.yaml" in listed and "servicemonitor.yaml" not in listed
    assert "sidecar-networkpolicy.yaml" not in listed
    datasources = yaml.safe_load(changed["grafana-datasources.yaml"]["data"][
        "exporter-datasources.yaml"])
    assert datasources["datasources"] == []
    assert _with_options(release="prom")["podmonitor.yaml"]["metadata"]["labels"][
        "release"] == "prom"


def test_dashboards_are_labelled_for_the_sidecar_and_match_the_stacks() -> None:
    objects = committed_objects()
    boards = {n: o for n, o in objects.items() if n.startswith("grafana-dashboard-")}
    assert len(boards) == len(list((ROOT / "grafana" / "dashboards").glob("*.json"))) == 6
    for obj in boards.values():
        assert obj["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, text),) = obj["data"].items()
        assert text == (ROOT / "grafana" / "dashboards" / key).read_text()
        assert len(text.encode()) < 256 * 1024  # kubectl apply's annotation limit
    datasources = objects["grafana-datasources.yaml"]
    assert datasources["metadata"]["labels"]["grafana_datasource"] == "1"
    provisioned = yaml.safe_load(datasources["data"]["exporter-datasources.yaml"])
    compose = {d["uid"]: d for d in yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())[
        "datasources"]}
    (loki,) = provisioned["datasources"]
    assert loki["isDefault"] is False  # kube-prometheus-stack's Prometheus is the default
    # The compose file's Loki settings, less the links to datasources not provisioned here
    # (the compose stack's Tempo): a link to a uid Grafana does not have opens nothing.
    here = {d["uid"] for d in provisioned["datasources"]}
    compose_loki = compose["loki"]["jsonData"]
    expected = dict(compose_loki, derivedFields=[
        f for f in compose_loki["derivedFields"] if f["datasourceUid"] in here])
    assert expected["derivedFields"]
    assert (loki["uid"], loki["jsonData"]) == ("loki", expected)
    used = {t["datasource"]["uid"] for o in boards.values()
            for board in [json.loads(next(iter(o["data"].values())))]
            for p in board["panels"] for t in p.get("targets", [])}
    assert used == {"prometheus", "loki"}
