"""`/api/v1/observability`: health, metrics history, alerts, logs and a dashboard in one call.

Every route is guarded by `EXPORTER_API_TOKEN` (when set) and documented with its model.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from starlette.concurrency import run_in_threadpool

from exporter.api.dashboard_series import StatusDashboard, build_series
from exporter.api.errors import TopErrorGroup
from exporter.api.observability_models import (
    AlertsReport,
    CurrentMetrics,
    HealthReport,
    HistoryPoint,
    LogsReport,
    MetricsReport,
    log_record,
)
from exporter.api.validation import (
    ErrorReply,
    Since,
    lookback_query,
    protected,
    since_time,
    window_seconds,
)
from exporter.api.watched_models import TargetsReport
from exporter.config import Settings
from exporter.errors.store import ErrorStore
from exporter.health.checks import database_checks, full_checks, redis_checks, system_check
from exporter.health.engine_alerts import EngineAlerts
from exporter.health.monitor import HealthMonitor
from exporter.health.notifications import NotificationStore
from exporter.logs.logql import LogSourceError, search_loki
from exporter.logs.query import MAX_LIMIT, LogQuery, search_files
from exporter.thresholds import slow_request_seconds

PREFIX = "/api/v1/observability"
Instance = Annotated[str | None, Query(
    min_length=1, max_length=300,
    description="one watched instance (host:port, as /targets lists them); all when absent")]
_LEVEL = r"^(?i:debug|info|warning|error|critical)$"
_NO_INSTANCE: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorReply, "description": "`instance` is not one the sidecar watches"},
}
_LOKI_DOWN: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorReply, "description": "Loki (EXPORTER_LOKI_URL) could not be read"},
}


def log_filters(
    level: Annotated[
        str | None, Query(pattern=_LEVEL, description="minimum level, e.g. ERROR")
    ] = None,
    trace_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    contains: Annotated[
        str | None, Query(min_length=1, max_length=200, description="text in the message")
    ] = None,
    since: Since = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """The query parameters shared by the three logs routes."""
    return {"level": level, "trace_id": trace_id, "contains": contains, "since": since,
            "limit": limit}

Filters = Annotated[dict[str, Any], Depends(log_filters)]


def observability_router(
    settings: Settings,
    monitor: HealthMonitor,
    error_store: ErrorStore | None = None,
    notifications: NotificationStore | None = None,
) -> APIRouter:
    """The router; mount it on the sidecar (or any app) with `include_router`. With
    `error_store`, the dashboard lists the top error groups; with `notifications`, the alerts
    list what Alertmanager sent to the webhook."""
    guard = protected(settings)

    def fresh() -> None:
        # A worker that does not run the monitor reads the one that does (health/shared.py).
        monitor.before_read()

    router = APIRouter(prefix=PREFIX, tags=["observability"], responses=guard["responses"],
                       dependencies=[*guard["dependencies"], Depends(fresh)])
    service, env = settings.service_name, settings.environment
    # Where the access log starts writing slow_requests_*.log: the same number here.
    slow_ms = slow_request_seconds(settings, monitor.thresholds) * 1000.0

    def current(instance: str | None = None) -> CurrentMetrics:
        return CurrentMetrics.of(monitor.history.latest(), monitor.signal_window, instance,
                                 monitor.history.interval, monitor.history.failing)

    def watched(instance: str | None) -> str | None:
        """`instance` when the sidecar watches it; 404 naming those it watches otherwise."""
        if instance is None:
            return None
        known = [t.instance for t in TargetsReport.of(monitor).targets]
        if instance not in known:
            listed = ", ".join(known) if known else "none (the sidecar watches its own app)"
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"no watched instance {instance!r}; watched: {listed}")
        return instance

    @router.get("/targets", response_model=TargetsReport, summary="The apps being watched")
    def targets() -> TargetsReport:
        return TargetsReport.of(monitor)

    def alerts_report() -> AlertsReport:
        received = notifications.newest_first() if notifications is not None else None
        engines = monitor.alerts
        if isinstance(engines, EngineAlerts):
            source = "alertmanager" if engines.alertmanager is not None else "prometheus"
            return AlertsReport.of(engines.active(), engines.resolved(), received, source,
                                   engines.silences())
        return AlertsReport.of(engines.active(), engines.resolved(), received)

    @router.get(
        "/health/full", response_model=HealthReport,
        responses={503: {"model": HealthReport, "description": "overall status is unhealthy"}},
        summary="Every check; 503 only when unhealthy",
    )
    def health_full(response: Response) -> HealthReport:
        report = HealthReport.of(service, env, full_checks(monitor))
        if report.status == "unhealthy":
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return report

    @router.get("/health/database", response_model=HealthReport, summary="Database dependencies")
    def health_database() -> HealthReport:
        return HealthReport.of(service, env, database_checks(monitor))

    @router.get("/health/redis", response_model=HealthReport, summary="Redis dependencies")
    def health_redis() -> HealthReport:
        return HealthReport.of(service, env, redis_checks(monitor))

    @router.get("/health/system", response_model=HealthReport, summary="CPU, memory and disk")
    def health_system() -> HealthReport:
        return HealthReport.of(service, env, [system_check(monitor, monitor.alerts.active())])

    @router.get("/metrics", response_model=MetricsReport, summary="Current figures and history",
                responses=_NO_INSTANCE)
    def metrics(
        window: Annotated[str, lookback_query(
            "history to return (0s: none; longer than the history window, "
            "EXPORTER_HISTORY_WINDOW_SECONDS, gives all)")] = "1h",
        instance: Instance = None,
    ) -> MetricsReport:
        seconds = min(window_seconds(window), monitor.history.window)
        one = watched(instance)
        return MetricsReport(
            window_seconds=seconds, interval_seconds=monitor.history.interval,
            current=current(one),
            history=[HistoryPoint.of(p, one) for p in monitor.history.points(seconds)],
        )

    @router.get("/alerts", response_model=AlertsReport, summary="Firing and pending alerts")
    def alerts() -> AlertsReport:
        return alerts_report()

    async def search(stream: str, filters: dict[str, Any], min_ms: float | None) -> LogsReport:
        now = datetime.now(timezone.utc)
        since = (
            since_time(filters["since"], now) if filters["since"] else now - timedelta(hours=24)
        )
        # Nothing older is kept (files are deleted, Loki's default max_query_length is 30 days):
        # an earlier `since` (0001-01-01) means "all there is".
        since = max(since, now - timedelta(days=settings.log_retention_days))
        query = LogQuery(
            since=since, until=now, level=filters["level"], trace_id=filters["trace_id"],
            contains=filters["contains"], limit=filters["limit"], min_duration_ms=min_ms,
        )
        if settings.loki_url:
            try:
                found = await search_loki(settings.loki_url, service, env, stream, query)
            except LogSourceError as exc:
                raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
        else:
            # Reading files is blocking I/O: off the event loop, or /metrics waits for it.
            found = await run_in_threadpool(search_files, settings.log_dir, stream, query)
        records = [log_record(r) for r in found]
        return LogsReport(
            source="loki" if settings.loki_url else "files", count=len(records), records=records
        )


    @router.get("/logs", response_model=LogsReport, summary="Log records, newest first",
                responses=_LOKI_DOWN)
    async def logs(f: Filters) -> LogsReport:
        return await search("app", f, None)

    @router.get("/logs/errors", response_model=LogsReport, summary="ERROR and CRITICAL records",
                responses=_LOKI_DOWN)
    async def logs_errors(f: Filters) -> LogsReport:
        return await search("error", f, None)

    @router.get(
        "/logs/slow-requests", response_model=LogsReport,
        summary="Requests slower than the API latency threshold", responses=_LOKI_DOWN,
    )
    async def logs_slow(f: Filters) -> LogsReport:
        return await search("slow_requests", f, slow_ms)

    @router.get(
        "/dashboard", response_model=StatusDashboard, summary="Everything a status page needs",
        responses=_NO_INSTANCE,
    )
    async def dashboard(instance: Instance = None) -> StatusDashboard:
        one = watched(instance)
        last_hour = {"level": None, "trace_id": None, "contains": None, "since": "1h",
                     "limit": 10}
        errors: LogsReport | None = None
        slow: LogsReport | None = None
        try:
            errors = await search("error", last_hour, None)
            slow = await search("slow_requests", last_hour, slow_ms)
        except HTTPException:  # Loki down: the status page still answers, without logs
            pass
        metrics = current(one)
        points = monitor.history.points(min(3600.0, monitor.history.window))
        return StatusDashboard(
            service=service, environment=env, generated_at=datetime.now(timezone.utc),
            health=HealthReport.of(service, env, full_checks(monitor)), metrics=metrics,
            alerts=alerts_report(), recent_errors=errors.records if errors else [],
            history_interval_seconds=monitor.history.interval,
            history_ts=[p.ts for p in points],
            series=build_series(points, monitor.thresholds, monitor.signal_window, one),
            targets=TargetsReport.of(monitor),
            top_errors=[TopErrorGroup.model_validate(g) for g in await run_in_threadpool(top)],
            slow_requests=slow.records if slow else [],
        )

    def top() -> list[dict[str, Any]]:
        if error_store is None:
            return []
        try:
            return error_store.top(window_hours=1, limit=10)
        except Exception:  # a locked or broken store must not take the status page down
            return []

    return router
