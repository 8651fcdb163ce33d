"""`Settings`: every knob of the exporter, read from `EXPORTER_*` variables and validated once."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from exporter.config.defaults import (
    DEFAULT_BUCKETS,
    DEFAULT_REDACT_KEYS,
    MAX_SAMPLES,
    SEMCONV_BUCKETS,
    ring_length,
)
from exporter.config.dependencies import parse_dependency, parse_dependency_map, parse_queues
from exporter.config.reporting import ReportingSettings
from exporter.config.values import split_list
from exporter.config.watching import WatchSettings

ENV_PREFIX = "EXPORTER_"

# Service, environment and dependency names: what a Prometheus label value may safely be.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class Settings(ReportingSettings, WatchSettings):
    """Every knob of the exporter; each field is read from `EXPORTER_<FIELD>`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", validate_default=True, frozen=True
    )

    service_name: str = Field("app", pattern=NAME_PATTERN, description="`service` label value")
    environment: str = Field("development", pattern=NAME_PATTERN, description="`env` label value")
    host: str = Field("127.0.0.1", min_length=1, description="bind address of `exporter serve`")
    port: int = Field(9480, ge=1, le=65535, description="bind port of `exporter serve`")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="debug, info, warning, error or critical (any case)"
    )
    metrics_path: str = Field("/metrics", pattern=r"^/[A-Za-z0-9_./-]*$")
    excluded_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/metrics", "/healthz"],
        description="raw paths or route templates that are not counted (replaces the default "
        "list: keep /metrics and /healthz in it; the metrics path is never counted anyway)",
    )
    histogram_buckets: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_BUCKETS),
        description="upper bounds, in seconds, of http_request_duration_seconds",
    )
    http_metrics: Literal["default", "semconv"] = Field(
        "default", description="HTTP metric names: `default` (http_requests_total, "
        "http_request_duration_seconds, http_requests_in_progress) or `semconv` (the "
        "OpenTelemetry HTTP conventions: http_server_request_duration_seconds, "
        "http_server_active_requests; buckets 0.005 ... 10 s unless EXPORTER_HISTOGRAM_BUCKETS "
        "is set)",
    )
    disk_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/"],
        description="existing directories (mount points) whose disk usage is reported",
    )
    api_token: SecretStr | None = Field(
        None, description="when set, the /api/v1/... routes need `Authorization: Bearer <token>`"
    )
    api_body_max_bytes: int = Field(64 * 1024, ge=1024, le=64 << 20, description="largest body "
                                    "of PATCH /errors/{id}, PUT /demo/config; more: 413 unread")
    data_dir: Path = Field(Path("data"), description="where local state (error store, spool) lives")
    log_dir: Path = Field(Path("logs"), description="where the daily JSON log files are written")
    demo: bool = Field(False, description="serve the demo routes and their background load "
                       "inside the sidecar (make run starts the demo shop apart instead)")
    demo_error_ratio: float = Field(0.02, ge=0.0, le=1.0, description="share of failing demo calls")
    demo_slow_seconds: float = Field(0.45, ge=0.0, le=30.0, description="latency of /demo/slow")
    demo_rate: float = Field(5.0, ge=0.0, le=1000.0, description="demo requests per second")
    demo_port: int = Field(9481, ge=1, le=65535, description="port of the demo service that "
                           "`exporter serve --demo` starts")
    demo_database_url: str = Field(
        "", description="the demo shop's SQL database: empty for an SQLite file in "
        "EXPORTER_DATA_DIR, or postgresql://...")
    demo_redis_url: str = Field("", description="a Redis the demo shop caches items in")
    # --- logs ---
    log_stdout: bool = Field(True, description="also write the JSON log lines to stdout")
    log_retention_days: int = Field(30, ge=1, le=3650, description="days the daily files are kept")
    slow_request_seconds: float | None = Field(
        None, gt=0.0, le=3600.0,
        description="requests at least this slow go to slow_requests_*.log; unset or empty: "
        "the API latency threshold of thresholds.yaml (see thresholds.slow_request_seconds)",
    )
    log_redact_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_REDACT_KEYS),
        description="more names whose values are logged as [redacted], matched as whole words "
        "or word endings (ssn: user_ssn, userSsn, userssn); they add to the built-in secret "
        "names, never replace them",
    )
    log_batch_max_entries: int = Field(1000, ge=1, le=100_000, description="entries per batch call")
    log_batch_concurrency: int = Field(4, ge=1, le=1000, description="batches read at once")
    log_entry_max_bytes: int = Field(
        65536, ge=256, le=16 << 20, description="largest accepted message of the ingestion API"
    )
    # What Loki refuses by default (reject_old_samples_max_age 1w; see docs/logs.md for why
    # ahead is 1 minute, not Loki's creation_grace_period of 10).
    log_entry_max_age_seconds: float = Field(
        7 * 86400, ge=60, le=3650 * 86400, description="oldest accepted entry timestamp")
    log_entry_max_skew_seconds: float = Field(
        60, ge=0, le=86400, description="furthest ahead accepted entry timestamp")
    loki_url: str = Field("", description="Loki base URL; empty: no shipping, files only")
    loki_tenant: str = Field("", description="X-Scope-OrgID sent to a multi-tenant Loki")
    loki_username: str = Field("", description="basic-auth user for Loki")
    loki_password: SecretStr | None = Field(None, description="basic-auth password for Loki")
    loki_bearer_token: SecretStr | None = Field(None, description="bearer token for Loki")
    loki_labels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="static stream labels besides service, env, level and "
        "kind, 'k=v,k2=v2' or a JSON object"
    )
    loki_batch_lines: int = Field(1000, ge=1, le=100_000)
    loki_batch_bytes: int = Field(1 << 20, ge=1024, le=64 << 20)
    loki_batch_wait_seconds: float = Field(1.0, gt=0.0, le=60.0)
    loki_spool_max_bytes: int = Field(
        512 << 20, ge=0, description="how far behind the daily files Loki may fall while failing")
    loki_close_timeout_seconds: float = Field(5.0, ge=0.0, le=300.0)
    loki_push_timeout_seconds: float = Field(5.0, gt=0.0, le=300.0)

    @field_validator("log_redact_keys", mode="before")
    @classmethod
    def _redact_list(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("loki_labels", mode="before")
    @classmethod
    def _labels_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not a valid JSON object ({exc.msg})") from None
            pairs = [part.partition("=") for part in text.split(",") if part.strip()]
            if any(not sep for _k, sep, _v in pairs):
                raise ValueError("use 'name=value,name2=value2'")
            return {k.strip(): v.strip() for k, _sep, v in pairs}
        return value

    @field_validator("loki_labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name) or name.startswith("__"):
                raise ValueError(f"label name {name!r} is not a valid Loki label name")
            if name in ("service", "env", "level", "kind"):
                raise ValueError(f"label {name!r} is set by the exporter itself")
        return value

    @field_validator("loki_url")
    @classmethod
    def _loki_url(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[^\s/@]+(/\S*)?", value):
            raise ValueError("must be http(s)://host[:port][/path] without credentials")
        return value

    @field_validator("api_token", "slow_request_seconds", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # EXPORTER_API_TOKEN= (empty) means "no token", not "a token nobody can send";
        # EXPORTER_SLOW_REQUEST_SECONDS= means "from thresholds.yaml".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    # --- health: probes, queues, thresholds, history, alerts, observability API ---
    dependencies: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="named dependency URLs to probe: JSON object or name=url,name=url",
    )
    queues: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="queue URLs whose depth is read: redis://host:port/db/queue, amqp://.../vhost/q",
    )
    probe_interval_seconds: float = Field(15.0, ge=0.05, le=3600.0)
    probe_timeout_seconds: float = Field(2.0, ge=0.01, le=60.0)
    history_interval_seconds: float = Field(10.0, ge=0.05, le=3600.0)
    history_window_seconds: float = Field(3600.0, ge=1.0, le=7 * 86400.0)
    thresholds_file: Path | None = Field(
        None, description="thresholds.yaml to use; the packaged default when unset"
    )
    # --- stack: the Alertmanager webhook receiver ---
    alert_notifications_kept: int = Field(
        100, ge=1, le=10_000, description="Alertmanager notifications kept in memory for /alerts"
    )
    alert_webhook_max_bytes: int = Field(4 << 20, ge=64 * 1024, le=256 << 20, description="largest"
                                         " Alertmanager notification body; more: 413 unread")

    @field_validator("dependencies", mode="before")
    @classmethod
    def _dependency_map(cls, value: Any) -> Any:
        pairs = parse_dependency_map(value)
        for name, url in pairs.items():
            parse_dependency(name, url)
        return pairs

    @field_validator("history_window_seconds")
    @classmethod
    def _history_ring_bounded(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("history_interval_seconds")
        if interval is not None and ring_length(value, interval) > MAX_SAMPLES:
            raise ValueError(
                f"{ring_length(value, interval)} samples at EXPORTER_HISTORY_INTERVAL_SECONDS="
                f"{interval:g}; the history keeps at most {MAX_SAMPLES}: shorten the window or "
                "lengthen the interval"
            )
        return value

    @field_validator("queues", mode="before")
    @classmethod
    def _queue_list(cls, value: Any) -> Any:
        urls = split_list(value)
        if isinstance(urls, list):
            parse_queues(str(url) for url in urls)
        return urls

    @field_validator("excluded_paths", "disk_paths", "histogram_buckets", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("excluded_paths")
    @classmethod
    def _paths_absolute(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"each path must start with '/'; {path!r} does not")
        return value

    @field_validator("log_level", "http_metrics", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def http_buckets(self) -> list[float]:
        """The latency histogram's buckets: EXPORTER_HISTOGRAM_BUCKETS when set, else the
        naming's own (the conventions' 0.005 ... 10 s under `semconv`)."""
        if self.http_metrics == "semconv" and "histogram_buckets" not in self.model_fields_set:
            return list(SEMCONV_BUCKETS)
        return self.histogram_buckets

    @field_validator("disk_paths")
    @classmethod
    def _disks_exist(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one directory (the default is /)")
        for path in value:
            if not os.path.isdir(path):
                raise ValueError(f"{path!r} is not an existing directory")
        return value

    @field_validator("histogram_buckets")
    @classmethod
    def _buckets_increasing(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("needs at least one bucket")
        if not all(math.isfinite(b) for b in value):
            raise ValueError("buckets must be finite numbers (the +Inf bucket is always added)")
        if any(b <= 0 for b in value) or any(a >= b for a, b in itertools.pairwise(value)):
            raise ValueError("buckets must be positive and strictly increasing")
        return value
