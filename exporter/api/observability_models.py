"""Response models of /api/v1/observability (they make the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from exporter.health.alerts import Alert
from exporter.health.checks import Check, Detail, Status, worst
from exporter.health.history import Sample
from exporter.health.notifications import ReceivedNotification


def utc(ts: float | None) -> datetime | None:
    """Unix time as an aware UTC datetime (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


class CheckOut(BaseModel):
    """One check: a host resource, the HTTP traffic, a dependency or a queue."""

    name: str
    kind: Literal["system", "http", "dependency", "queue"]
    status: Status
    reason: str = Field(description="'ok', or every reason the check is not healthy")
    details: dict[str, Detail]
    checked_at: datetime | None = Field(description="when the underlying value was read")

    @classmethod
    def of(cls, check: Check) -> CheckOut:
        """The model of a `Check`."""
        return cls(
            name=check.name, kind=check.kind, status=check.status, reason=check.reason,
            details=check.details, checked_at=utc(check.checked_at),
        )


class HealthReport(BaseModel):
    """Overall status (the worst check's) and every check with its reason."""

    status: Status
    service: str
    environment: str
    checked_at: datetime
    checks: list[CheckOut]

    @classmethod
    def of(cls, service: str, environment: str, checks: list[Check]) -> HealthReport:
        """A report over `checks`."""
        return cls(
            status=worst([c.status for c in checks]), service=service, environment=environment,
            checked_at=datetime.now(timezone.utc), checks=[CheckOut.of(c) for c in checks],
        )


class Latency(BaseModel):
    """HTTP request duration quantiles in seconds, from the histogram buckets."""

    p50: float | None
    p95: float | None
    p99: float | None


class CurrentMetrics(BaseModel):
    """The newest values; rates and quantiles over the last minute."""

    cpu_usage_ratio: float | None
    memory_usage_ratio: float | None
    disk_usage_ratio: dict[str, float] = Field(description="by mount point")
    qps: float | None = Field(description="HTTP requests per second")
    error_rate: float | None = Field(description="share of responses with status 5xx")
    latency_seconds: Latency
    dependency_latency_seconds: dict[str, float] = Field(description="by dependency name")
    queue_depth: dict[str, float] = Field(
        description="by backend/queue; RabbitMQ counts ready messages only (not unacknowledged)"
    )


class HistoryPoint(BaseModel):
    """One history sample; rates and quantiles over the interval that ends at `ts`."""

    ts: datetime
    cpu_usage_ratio: float | None
    memory_usage_ratio: float | None
    disk_usage_ratio: dict[str, float]
    qps: float | None
    error_rate: float | None
    latency_seconds: Latency
    dependency_latency_seconds: dict[str, float]
    queue_depth: dict[str, float]

    @classmethod
    def of(cls, s: Sample) -> HistoryPoint:
        """The model of a history `Sample`."""
        return cls(
            ts=utc(s.ts) or datetime.now(timezone.utc), cpu_usage_ratio=s.cpu,
            memory_usage_ratio=s.memory, disk_usage_ratio=s.disk, qps=s.qps,
            error_rate=s.error_rate, latency_seconds=Latency(p50=s.p50, p95=s.p95, p99=s.p99),
            dependency_latency_seconds=s.dependency_latency, queue_depth=s.queue_depth,
        )


class MetricsReport(BaseModel):
    """Current figures and the history of the requested window."""

    window_seconds: float
    interval_seconds: float
    current: CurrentMetrics
    history: list[HistoryPoint]


class AlertOut(BaseModel):
    """An alert instance: which threshold, on what, since when."""

    alert: str
    key: str = Field(description="the threshold's key in thresholds.yaml")
    severity: str
    state: Literal["pending", "firing", "resolved"]
    summary: str
    labels: dict[str, str]
    value: float = Field(description="the last evaluated value, in the signal's base unit")
    threshold: float
    since: datetime = Field(description="when the condition became true")
    fired_at: datetime | None
    resolved_at: datetime | None

    @classmethod
    def of(cls, a: Alert) -> AlertOut:
        """The model of an `Alert`."""
        return cls(
            alert=a.alert, key=a.key, severity=a.severity, state=a.state, summary=a.summary,
            labels=dict(a.labels), value=a.value, threshold=a.threshold,
            since=utc(a.since) or datetime.now(timezone.utc), fired_at=utc(a.fired_at),
            resolved_at=utc(a.resolved_at),
        )


class AlertsReport(BaseModel):
    """Firing and pending alerts, those resolved in the last 15 minutes, and notifications."""

    firing: list[AlertOut]
    pending: list[AlertOut]
    resolved: list[AlertOut]
    notifications: list[ReceivedNotification] = Field(
        default_factory=list,
        description="Alertmanager notifications received at /alerts/webhook, newest first",
    )

    @classmethod
    def of(
        cls, active: list[Alert], resolved: list[Alert],
        notifications: list[ReceivedNotification] | None = None,
    ) -> AlertsReport:
        """A report of the evaluator's alerts (and the webhook's notifications)."""
        return cls(
            firing=[AlertOut.of(a) for a in active if a.state == "firing"],
            pending=[AlertOut.of(a) for a in active if a.state == "pending"],
            resolved=[AlertOut.of(a) for a in resolved],
            notifications=notifications or [],
        )


class LogRecordOut(BaseModel):
    """One JSON log record; fields beyond these are passed through as written."""

    model_config = ConfigDict(extra="allow")

    ts: str | None = None
    level: str | None = None
    logger: str | None = None
    message: str | None = None
    service: str | None = None
    env: str | None = None
    trace_id: str | None = None
    method: str | None = None
    route: str | None = None
    path: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    client: str | None = None


class LogsReport(BaseModel):
    """Matching records, newest first."""

    source: Literal["files", "loki"]
    count: int
    records: list[LogRecordOut]


class Dashboard(BaseModel):
    """Everything a status page needs, in one call."""

    service: str
    environment: str
    generated_at: datetime
    health: HealthReport
    metrics: CurrentMetrics
    alerts: AlertsReport
    recent_errors: list[LogRecordOut]


_TEXT_FIELDS = ("ts", "level", "logger", "message", "service", "env", "trace_id", "method",
                "route", "path", "client")


def log_record(raw: dict[str, object]) -> LogRecordOut:
    """A record as written, with the documented fields coerced so a bad line cannot fail."""
    record = dict(raw)
    for name in _TEXT_FIELDS:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            record[name] = str(value)
    status = record.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        record["status"] = None
    duration = record.get("duration_ms")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, (int, float))
    ):
        record["duration_ms"] = None
    return LogRecordOut.model_validate(record)
