"""An AlertmanagerConfig with the routing, inhibition and receivers of
alertmanager/alertmanager.yml (tests/test_kubernetes_alertmanager.py holds the two together),
and the ConfigMap carrying alertmanager/templates/ for it.

Secrets are `{name, key}` references to the Secret `render.kubernetes.secret`, in the same
namespace; the non-secret values that alertmanager.yml takes from the environment come from
`render.kubernetes.alerts`.
"""

from __future__ import annotations

from typing import Any

from exporter.kubernetes_options import KubernetesOptions
from exporter.render.kubernetes.objects import MONITORING_ALPHA, obj, sidecar_url

TEMPLATES_NAME = "exporter-alertmanager-templates"
WEBHOOK_PATH = "/api/v1/observability/alerts/webhook"
# Keys of the Secret that the objects read.
API_TOKEN_KEY = "api-token"
SLACK_KEY = "slack-api-url"
SMTP_PASSWORD_KEY = "smtp-auth-password"


def matcher(name: str, value: str, match_type: str = "=") -> dict[str, str]:
    """One matcher as the CRD writes it (alertmanager.yml: 'name="value"')."""
    return {"name": name, "value": value, "matchType": match_type}


def _secret(options: KubernetesOptions, key: str) -> dict[str, str]:
    return {"name": options.secret, "key": key}


def _webhook(options: KubernetesOptions) -> list[dict[str, Any]]:
    """Every notification reaches the sidecar, which lists it under /alerts."""
    return [{
        "url": sidecar_url(options) + WEBHOOK_PATH,
        "sendResolved": True,
        "maxAlerts": 0,
        "httpConfig": {"authorization": {
            "type": "Bearer", "credentials": _secret(options, API_TOKEN_KEY)}},
    }]


def _slack(options: KubernetesOptions) -> list[dict[str, Any]]:
    return [{
        "apiURL": _secret(options, SLACK_KEY),
        "channel": options.alerts.slack_channel,
        "sendResolved": True,
        "title": '{{ template "exporter.subject" . }}',
        "titleLink": '{{ template "exporter.dashboard_url" . }}',
        "text": '{{ template "exporter.text" . }}',
        "color": '{{ template "exporter.slack.color" . }}',
    }]


def _email(options: KubernetesOptions) -> list[dict[str, Any]]:
    alerts = options.alerts
    return [{
        "to": alerts.email_to,
        "from": alerts.email_from,
        "smarthost": alerts.smarthost,
        "authUsername": alerts.smtp_username,
        "authPassword": _secret(options, SMTP_PASSWORD_KEY),
        "requireTLS": True,
        "sendResolved": True,
        "headers": [{"key": "Subject", "value": '{{ template "exporter.subject" . }}'}],
        "html": '{{ template "exporter.email.html" . }}',
        "text": '{{ template "exporter.text" . }}',
    }]


def alertmanager_config(options: KubernetesOptions) -> dict[str, Any]:
    """The routing tree, inhibit rules and receivers of alertmanager/alertmanager.yml."""
    critical, warning = matcher("severity", "critical"), matcher("severity", "warning")
    spec = {
        "route": {
            "receiver": "sidecar",
            "groupBy": ["alertname", "service"],
            "groupWait": "30s",
            "groupInterval": "5m",
            "repeatInterval": "4h",
            "routes": [
                {"receiver": "critical", "matchers": [critical], "repeatInterval": "1h"},
                {"receiver": "warning", "matchers": [warning]},
            ],
        },
        "inhibitRules": [
            # While a critical alert fires, its warning twin (same name, service) stays quiet.
            {"sourceMatch": [critical], "targetMatch": [warning],
             "equal": ["alertname", "service"]},
            # A service that cannot be scraped, or whose dependency is down: its symptom
            # warnings stay quiet, the critical alert already names the cause.
            {"sourceMatch": [matcher("alertname", "TargetDown|DependencyDown", "=~"), critical],
             "targetMatch": [warning], "equal": ["service"]},
        ],
        "receivers": [
            {"name": "sidecar", "webhookConfigs": _webhook(options)},
            {"name": "critical", "webhookConfigs": _webhook(options),
             "emailConfigs": _email(options), "slackConfigs": _slack(options)},
            {"name": "warning", "webhookConfigs": _webhook(options),
             "slackConfigs": _slack(options)},
        ],
    }
    return obj(MONITORING_ALPHA, "AlertmanagerConfig", "exporter", options, "spec", spec,
               release=True)


def templates_config_map(options: KubernetesOptions, templates: dict[str, str]) -> (
        dict[str, Any]):
    """alertmanager/templates/*.tmpl, for the Alertmanager to mount (`configMaps:` of its
    spec) and load (`templates:` of its configuration): docs/kubernetes.md."""
    return obj("v1", "ConfigMap", TEMPLATES_NAME, options, "data", dict(sorted(templates.items())))
