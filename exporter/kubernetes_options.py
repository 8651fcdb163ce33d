"""`render.kubernetes` of thresholds.yaml: how `exporter render --target kubernetes` writes
deploy/kubernetes/ (docs/kubernetes.md). Every field has a default; the block is optional."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from exporter.config import Settings

# A Kubernetes object name or namespace (RFC 1123 label), a label value, a port name.
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
_PORT_NAME = r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$"
_URL = r"^https?://[^\s/@]+(/\S*)?$"
_OPTIONAL_URL = r"^(https?://[^\s/@]+(/\S*)?)?$"


class AlertRouting(BaseModel):
    """The non-secret values alertmanager/alertmanager.yml reads from the environment
    (ALERT_EMAIL_TO...); secrets come from the Secret named by `secret`, never from here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email_to: str = Field("oncall@example.com", min_length=3, pattern=r"^[^\s@]+@[^\s@]+$")
    email_from: str = Field("alertmanager@example.com", min_length=3, pattern=r"^\S(.*\S)?$")
    smarthost: str = Field("smtp.example.com:587", pattern=r"^[^\s:/]+:\d{1,5}$")
    smtp_username: str = Field("alertmanager@example.com", pattern=r"^\S*$")
    slack_channel: str = Field("#alerts", pattern=r"^[#@]?[^\s#@]+$")


class KubernetesOptions(BaseModel):
    """Where the objects go, which app they watch, and how the stack finds them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field("monitoring", pattern=_DNS_LABEL, description=(
        "of every object: Grafana's (its datasource sidecar looks only there), Prometheus' "
        "and Alertmanager's"))
    release: str = Field("kube-prometheus-stack", pattern=_LABEL_VALUE, description=(
        "`release` label kube-prometheus-stack selects rules and monitors by (its Helm "
        "release name); empty: no label"))
    app: str = Field("app", pattern=_DNS_LABEL, description=(
        "the instrumented app: pods and Service labelled app.kubernetes.io/name=<app>; "
        "its series get service=<app>"))
    app_namespace: str = Field("default", pattern=_DNS_LABEL)
    app_port: str = Field("http", pattern=_PORT_NAME, description="the app's named port")
    metrics_path: str = Field(
        Settings.model_fields["metrics_path"].default, pattern=r"^/[A-Za-z0-9_./-]*$")
    monitor: Literal["service", "pod"] = Field("service", description=(
        "which of servicemonitor.yaml and podmonitor.yaml kustomization.yaml applies: never "
        "both (each pod would be scraped twice, every sum doubled)"))
    scrape_interval: str = Field("15s", pattern=r"^[1-9][0-9]*(s|m)$")
    secret: str = Field("exporter", pattern=_DNS_LABEL, description=(
        "the Secret (created by you) holding api-token, slack-api-url, smtp-auth-password and "
        "optionally prometheus-password, prometheus-bearer-token, loki-password"))
    sidecar_image: str = Field("exporter:0.1.0", pattern=r"^\S+:\S+$")
    prometheus_url: str = Field(
        "http://prometheus-operated.monitoring.svc:9090", pattern=_URL,
        description="EXPORTER_PROMETHEUS_URL: Prometheus, Thanos Query or Mimir's query API")
    prometheus_username: str = Field("", pattern=r"^\S*$")
    prometheus_tenant: str = Field("", pattern=r"^[^\s/]*$")
    alertmanager_url: str = Field(
        "http://alertmanager-operated.monitoring.svc:9093", pattern=_OPTIONAL_URL)
    loki_url: str = Field("http://loki-gateway.monitoring.svc", pattern=_OPTIONAL_URL, description=(
        "EXPORTER_LOKI_URL of the sidecar and Grafana's Loki datasource (the Loki chart's "
        "gateway); empty: neither"))
    network_policy: bool = Field(True, description=(
        "apply sidecar-networkpolicy.yaml: only pods of the namespace reach the sidecar"))
    prometheus_datasource: bool = Field(False, description=(
        "also provision a Prometheus datasource with uid prometheus (a Grafana that is not "
        "kube-prometheus-stack's, which has one)"))
    alerts: AlertRouting = Field(default_factory=lambda: AlertRouting.model_validate({}))

    @field_validator("prometheus_url", "alertmanager_url", "loki_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def service_selector(self) -> str:
        """EXPORTER_SERVICE_SELECTOR: the app's series, as the monitors label them."""
        return f'service="{self.app}"'

    @property
    def sidecar(self) -> str:
        """Name of the sidecar's Deployment, Service and NetworkPolicy."""
        return f"{self.app}-exporter"


def is_absolute(url: str) -> bool:
    """True for an http(s) URL with a host: a link a notification can open."""
    return re.match(r"^https?://[^\s/]+", url) is not None
