"""The settings of what the sidecar watches when it is not the app itself: scraped targets, or
Prometheus (or Thanos, Mimir, VictoriaMetrics) and Alertmanager over their HTTP APIs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from exporter.config.targets import parse_targets

_ENGINE_URL = re.compile(r"^https?://[^\s/@]+(/\S*)?$")
# One or more PromQL label matchers: job="api", env=~"prod|staging"
_SELECTOR = re.compile(
    r'^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"'
    r'(\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*")*\s*,?\s*$')


class WatchSettings(BaseSettings):
    """Targets to scrape, or the engines to read; every field from `EXPORTER_<FIELD>`."""

    targets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="/metrics URLs of instrumented apps to watch (comma list or JSON list; "
        "host:port means http://host:port/metrics)",
    )
    targets_file: Path | None = Field(
        None, description="a file in Prometheus' file_sd shape (JSON or YAML) listing more "
        "targets; re-read when it changes",
    )
    scrape_timeout_seconds: float = Field(
        2.0, gt=0.0, le=60.0, description="how long one target's scrape may take")
    prometheus_url: str = Field(
        "", description="Prometheus (or Thanos, Mimir, VictoriaMetrics) base URL with its HTTP "
        "query API; the page and API then read the service's signals from it")
    prometheus_username: str = Field("", description="basic-auth user for Prometheus")
    prometheus_password: SecretStr | None = Field(None, description="basic-auth password")
    prometheus_bearer_token: SecretStr | None = Field(None, description="bearer token")
    prometheus_tenant: str = Field(
        "", description="X-Scope-OrgID sent to a multi-tenant engine (Mimir, Cortex, Thanos)")
    service_selector: str = Field(
        "", description="PromQL label matchers that pick the watched service's series, e.g. "
        "job=\"api\"; required with EXPORTER_PROMETHEUS_URL")
    alertmanager_url: str = Field(
        "", description="Alertmanager base URL: alerts and silences come from its API v2")
    engine_timeout_seconds: float = Field(
        1.5, gt=0.0, le=30.0, description="how long one query to Prometheus, Alertmanager "
        "may take (the API answers from the last values meanwhile)")

    @field_validator("targets", mode="before")
    @classmethod
    def _target_list(cls, value: Any) -> Any:
        targets = parse_targets(value)
        return [t.url for t in targets]

    @field_validator("prometheus_url", "alertmanager_url")
    @classmethod
    def _engine_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not _ENGINE_URL.match(value):
            raise ValueError("must be http(s)://host[:port][/path] without credentials")
        return value

    @field_validator("service_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        value = value.strip().strip("{}").strip()
        if value and not _SELECTOR.match(value):
            raise ValueError('PromQL label matchers such as job="api" or job="api", env="prod"')
        return value.rstrip(", ")

    @field_validator("prometheus_password", "prometheus_bearer_token", mode="before")
    @classmethod
    def _empty_secret(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _one_way_to_watch(self) -> WatchSettings:
        if self.prometheus_url and (self.targets or self.targets_file is not None):
            raise ValueError(
                "EXPORTER_PROMETHEUS_URL and EXPORTER_TARGETS/EXPORTER_TARGETS_FILE are both set: "
                "the sidecar reads the service from Prometheus or scrapes it, not both")
        if self.prometheus_url and not self.service_selector:
            raise ValueError(
                "EXPORTER_SERVICE_SELECTOR: required with EXPORTER_PROMETHEUS_URL, the PromQL "
                'matchers that pick the service\'s series, e.g. service="api" or job="api"')
        if self.alertmanager_url and not self.prometheus_url:
            raise ValueError(
                "EXPORTER_ALERTMANAGER_URL needs EXPORTER_PROMETHEUS_URL: without Prometheus the "
                "sidecar evaluates the alerts itself")
        return self
