"""The AlertmanagerConfig mirrors alertmanager/alertmanager.yml: the same routing tree,
inhibit rules and receivers, each secret a reference to the Secret, and the same notification
templates (shipped beside it in a ConfigMap)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_binary
from tests.kubernetes_objects import ROOT, committed_objects

COMPOSE = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
OBJECTS = committed_objects()
AMC = OBJECTS["alertmanagerconfig.yaml"]["spec"]
ROUTE_KEYS = {"receiver": "receiver", "group_by": "groupBy", "group_wait": "groupWait",
              "group_interval": "groupInterval", "repeat_interval": "repeatInterval",
              "continue": "continue"}


def _matcher(text: str) -> dict[str, str]:
    """'severity="critical"' -> the CRD's {name, value, matchType}."""
    match = re.fullmatch(r'(\w+)(=~|!~|!=|=)"(.*)"', text)
    assert match is not None, text
    return {"name": match.group(1), "value": match.group(3), "matchType": match.group(2)}


def _route(route: dict[str, Any]) -> dict[str, Any]:
    """An alertmanager.yml route in the CRD's spelling."""
    converted: dict[str, Any] = {ROUTE_KEYS[k]: v for k, v in route.items() if k in ROUTE_KEYS}
    if "matchers" in route:
        converted["matchers"] = [_matcher(m) for m in route["matchers"]]
    if "routes" in route:
        converted["routes"] = [_route(child) for child in route["routes"]]
    assert set(route) <= {*ROUTE_KEYS, "matchers", "routes"}, "a key this test cannot map"
    return converted


def test_the_routing_tree_is_alertmanager_ymls() -> None:
    assert AMC["route"] == _route(COMPOSE["route"])


def test_the_inhibit_rules_are_alertmanager_ymls() -> None:
    assert AMC["inhibitRules"] == [{
        "sourceMatch": [_matcher(m) for m in rule["source_matchers"]],
        "targetMatch": [_matcher(m) for m in rule["target_matchers"]],
        "equal": rule["equal"],
    } for rule in COMPOSE["inhibit_rules"]]


def test_the_receivers_are_alertmanager_ymls_with_secrets_referenced() -> None:
    compose = {r["name"]: r for r in COMPOSE["receivers"]}
    ours = {r["name"]: r for r in AMC["receivers"]}
    assert list(ours) == list(compose)
    for name, receiver in compose.items():
        kinds = {k.removesuffix("_configs") for k in receiver if k != "name"}
        assert {k.removesuffix("Configs") for k in ours[name] if k != "name"} == kinds, name
        (hook,) = ours[name]["webhookConfigs"]
        (theirs,) = receiver["webhook_configs"]
        assert hook["url"].endswith(theirs["url"].split(":9480", 1)[1])
        assert hook["url"].startswith("http://app-exporter.monitoring.svc:9480/")
        assert (hook["sendResolved"], hook["maxAlerts"]) == (
            theirs["send_resolved"], theirs["max_alerts"])
        assert hook["httpConfig"]["authorization"] == {
            "type": "Bearer", "credentials": {"name": "exporter", "key": "api-token"}}
        for slack, compose_slack in zip(ours[name].get("slackConfigs", []),
                                        receiver.get("slack_configs", []), strict=True):
            assert slack["apiURL"] == {"name": "exporter", "key": "slack-api-url"}
            for key in ("title", "text", "color", "send_resolved", "title_link"):
                camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), key)
                assert slack[camel] == compose_slack[key], (name, key)
        for email, compose_email in zip(ours[name].get("emailConfigs", []),
                                        receiver.get("email_configs", []), strict=True):
            assert email["authPassword"] == {"name": "exporter", "key": "smtp-auth-password"}
            assert email["requireTLS"] is COMPOSE["global"]["smtp_require_tls"]
            assert (email["html"], email["text"]) == (compose_email["html"],
                                                      compose_email["text"])
            assert email["headers"] == [{"key": "Subject",
                                         "value": compose_email["headers"]["Subject"]}]


def test_no_secret_value_is_written() -> None:
    text = (ROOT / "deploy" / "kubernetes" / "alertmanagerconfig.yaml").read_text()
    assert "hooks.slack.com" not in text
    assert not re.search(r"^\s*(apiURL|authPassword|credentials): \S", text, re.M)


def _back_to_alertmanager_yml(spec: dict[str, Any]) -> dict[str, Any]:
    """The AMC's routing as an alertmanager.yml, for amtool (receivers without integrations:
    routing does not look at them)."""
    names = {v: k for k, v in ROUTE_KEYS.items()}

    def route(r: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {names[k]: v for k, v in r.items() if k in names}
        if "matchers" in r:
            out["matchers"] = [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in r["matchers"]]
        if "routes" in r:
            out["routes"] = [route(child) for child in r["routes"]]
        return out

    return {"route": route(spec["route"]),
            "receivers": [{"name": r["name"]} for r in spec["receivers"]]}


@pytest.mark.parametrize("labels", [
    ["severity=critical"], ["severity=warning"], ["severity=info"], [],
])
def test_amtool_routes_an_alert_to_the_same_receiver(tmp_path: Path, labels: list[str]) -> None:
    amtool = require_binary("amtool", "prometheus-alertmanager")
    ours = tmp_path / "from-kubernetes.yml"
    ours.write_text(yaml.safe_dump(_back_to_alertmanager_yml(AMC)))
    answers = []
    for config in (ours, ROOT / "alertmanager" / "alertmanager.yml"):
        result = subprocess.run(
            [amtool, "config", "routes", "test", "--config.file", str(config),
             "alertname=HighErrorRate", "service=app", *labels], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        answers.append(result.stdout.strip())
    assert answers[0] == answers[1]


def test_the_templates_config_map_carries_alertmanager_templates(tmp_path: Path) -> None:
    data = OBJECTS["alertmanager-templates.yaml"]["data"]
    shipped = {p.name: p.read_text() for p in (ROOT / "alertmanager" / "templates").glob("*")}
    assert data == shipped
    # The texts the receivers name are defined there: amtool renders each.
    amtool = require_binary("amtool", "prometheus-alertmanager")
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    used = set(re.findall(r'template "([\w.]+)"', yaml.safe_dump(AMC["receivers"])))
    assert used == {"exporter.subject", "exporter.dashboard_url", "exporter.text",
                    "exporter.slack.color", "exporter.email.html"}
    for definition in sorted(used):
        result = subprocess.run(
            [amtool, "template", "render", "--template.glob", str(tmp_path / "*.tmpl"),
             "--template.text", '{{ template "' + definition + '" . }}'],
            capture_output=True, text=True)
        assert result.returncode == 0, (definition, result.stderr)
