"""Response models of /api/v1/observability (they make the OpenAPI schema)."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from exporter.health.alerts import Alert
from exporter.health.check import Check, Detail, Status, worst
from exporter.health.history import Point
from exporter.health.notifications import ReceivedNotification
from exporter.signals import CATALOGUE


def utc(ts: float | None) -> datetime | None:
    """Unix time as an aware UTC datetime (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


class CheckOut(BaseModel):
    """One check: a host resource, the HTTP traffic, a dependency or a queue."""

    name: str
    kind: str = Field(description="system, http, dependency, queue, targets, engine, reporting "
                      "(sentry), or a signal group of its own (celery)")
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


def _by_subject(point: Point | None, name: str, instance: str | None) -> dict[str, float]:
    if point is None or name not in CATALOGUE:
        return {}
    signal = CATALOGUE.get(name)
    values = point.of(instance).get(name, {})
    return {signal.subject_key(k): v for k, v in sorted(values.items())}


def _one(point: Point | None, name: str, instance: str | None) -> float | None:
    return None if point is None else point.value(name, (), instance)


class Figures(BaseModel):
    """The values of one history point: every signal over its window (rates and percentiles)
    or at its newest sample (gauges), named as before and, generally, under `signals`."""

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
    signals: dict[str, dict[str, float]] = Field(
        description="every signal of the catalogue (docs/signals.md) by name, then by subject "
        "(a mount point, a dependency, backend/queue, a task; \"\" for none)"
    )

    @staticmethod
    def fields_of(point: Point | None, instance: str | None = None) -> dict[str, Any]:
        """The fields of `point`, for all watched instances or one (all empty before the first
        point)."""
        def one(name: str) -> float | None:
            return _one(point, name, instance)

        def each(name: str) -> dict[str, float]:
            return _by_subject(point, name, instance)

        return {
            "cpu_usage_ratio": one("cpu_usage_ratio"),
            "memory_usage_ratio": one("memory_usage_ratio"),
            "disk_usage_ratio": each("disk_usage_ratio"),
            "qps": one("http_requests_per_second"),
            "error_rate": one("http_error_ratio"),
            "latency_seconds": Latency(
                p50=one("http_latency_p50_seconds"), p95=one("http_latency_p95_seconds"),
                p99=one("http_latency_p99_seconds")),
            "dependency_latency_seconds": {
                **each("database_latency_seconds"), **each("redis_latency_seconds")},
            "queue_depth": each("queue_depth"),
            "signals": {s.name: each(s.name) for s in CATALOGUE},
        }


class CurrentMetrics(Figures):
    """The newest values: rates and percentiles over `window`, as the alerts judge them."""

    window: str = Field(description="what rates and percentiles are taken over "
                        "(render.rate_window of the thresholds file, as the rules' rate())")
    instance: str | None = Field(
        None, description="the watched instance these values are of; null: all of them")
    as_of: datetime | None = Field(None, description="when these values were read")
    stale: bool = Field(False, description="true when they are older than two history "
                        "intervals: the source (Prometheus, the targets) cannot be read")

    @classmethod
    def of(cls, point: Point | None, window: str, instance: str | None = None,
           interval: float = 10.0, failing: bool = False) -> CurrentMetrics:
        """The newest point's values (of one watched instance, when given); stale when the
        source `failing` could not give a newer one, or it is over two intervals old."""
        stale = point is not None and (failing or time.time() - point.ts > 2 * interval)
        return cls(window=window, instance=instance, as_of=utc(point.ts) if point else None,
                   stale=stale, **cls.fields_of(point, instance))


class HistoryPoint(Figures):
    """One history point: the values as they were at `ts`."""

    ts: datetime

    @classmethod
    def of(cls, point: Point, instance: str | None = None) -> HistoryPoint:
        """The model of a history `Point` (of one watched instance, when given)."""
        return cls(ts=utc(point.ts) or datetime.now(timezone.utc),
                   **cls.fields_of(point, instance))


class MetricsReport(BaseModel):
    """Current figures and the history of the requested window."""

    window_seconds: float
    interval_seconds: float
    current: CurrentMetrics
    history: list[HistoryPoint]


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


class AlertOut(BaseModel):
    """An alert instance: which threshold, on what, since when."""

    alert: str
    key: str = Field(description="the threshold's key in thresholds.yaml")
    signal: str = Field(description="the signal it watches (docs/signals.md)")
    severity: str
    state: Literal["pending", "firing", "resolved"]
    summary: str
    labels: dict[str, str]
    value: float | None = Field(
        description="the last evaluated value, in the signal's base unit (null when the engine "
        "did not say)")
    threshold: float | None = Field(description="null for an alert no threshold sets")
    silenced: bool = Field(False, description="silenced or inhibited in Alertmanager")
    since: datetime = Field(description="when the condition became true")
    fired_at: datetime | None
    resolved_at: datetime | None

    @classmethod
    def of(cls, a: Alert) -> AlertOut:
        """The model of an `Alert`."""
        return cls(
            alert=a.alert, key=a.key, signal=a.signal, severity=a.severity, state=a.state,
            summary=a.summary,
            labels=dict(a.labels), value=_number(a.value), threshold=_number(a.threshold),
            silenced=a.silenced,
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
    source: Literal["in-process", "prometheus", "alertmanager"] = Field(
        "in-process", description="who evaluated them: the sidecar itself, or (over-Prometheus "
        "mode) Prometheus' rules, firing ones as Alertmanager has them")
    silences: list[dict[str, Any]] = Field(
        default_factory=list, description="Alertmanager's active silences (its API v2 form)")

    @classmethod
    def of(
        cls, active: list[Alert], resolved: list[Alert],
        notifications: list[ReceivedNotification] | None = None,
        source: str = "in-process", silences: list[dict[str, Any]] | None = None,
    ) -> AlertsReport:
        """A report of the evaluator's alerts (and the webhook's notifications)."""
        return cls(
            firing=[AlertOut.of(a) for a in active if a.state == "firing"],
            pending=[AlertOut.of(a) for a in active if a.state == "pending"],
            resolved=[AlertOut.of(a) for a in resolved],
            notifications=notifications or [],
            source=source,  # type: ignore[arg-type]
            silences=silences or [],
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
