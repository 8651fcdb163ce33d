"""The settings of where errors go (the local store, Sentry) and of Celery workers."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from exporter.config.values import looks_like_dsn


class ReportingSettings(BaseSettings):
    """Error capture and Celery workers; every field from `EXPORTER_<FIELD>`."""

    # --- errors ---
    sentry_dsn: SecretStr | None = Field(
        None, description="Sentry DSN; when set, errors are also reported to Sentry (never logged)"
    )
    sentry_traces_sample_rate: float = Field(0.0, ge=0.0, le=1.0, description="Sentry tracing")
    sentry_profiles_sample_rate: float = Field(0.0, ge=0.0, le=1.0, description="Sentry profiling")
    sentry_events_per_second: float = Field(
        10.0, gt=0.0, le=10_000.0, description="error events sent to Sentry, per second, at most"
    )
    release: str | None = Field(
        None, pattern=r"^[^\s/]{1,200}$", description="release name; default: package version"
    )
    errors_max_groups: int = Field(1000, ge=1, le=1_000_000, description="error groups kept")
    errors_samples_per_group: int = Field(10, ge=1, le=1000, description="samples kept per group")
    errors_retention_days: int = Field(30, ge=1, le=3650, description="days an error group is kept")
    # --- status page ---
    log_tail_queue_lines: int = Field(
        1000, ge=10, le=100_000,
        description="live-tail lines held per client; beyond, lines are skipped and counted",
    )
    log_tail_max_clients: int = Field(16, ge=1, le=1000, description="live-tail clients at once")
    status_page_path: str = Field(
        "/observability", pattern=r"^/[A-Za-z0-9_./-]*$",
        description="where an app instrumented with observability=True serves the status page "
        "(the sidecar serves it at /)")

    # --- celery ---
    celery_metrics_port: int = Field(
        9808, ge=0, le=65535, description="port of a Celery worker's /metrics; 0: no HTTP server"
    )
    celery_metrics_host: str = Field(
        "127.0.0.1", min_length=1, description="bind address of a Celery worker's /metrics"
    )
    celery_max_task_names: int = Field(
        200, ge=1, le=100_000, description="distinct `task` label values; later names read other"
    )
    celery_queue_depth: bool = Field(
        True, description="read the depth of the Celery app's queues from the worker"
    )
    celery_setup_logging: bool = Field(
        True, description="route the worker's logging through the exporter's JSON logs"
    )

    @field_validator("sentry_dsn")
    @classmethod
    def _sentry_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not looks_like_dsn(value.get_secret_value()):
            raise ValueError("not a Sentry DSN (expected http(s)://<key>@<host>/<project id>)")
        return value
