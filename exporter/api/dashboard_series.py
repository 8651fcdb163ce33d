"""The status page's sparklines: each key number with its 1-hour history and its threshold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from exporter.api.errors import TopErrorGroup
from exporter.api.observability_models import CurrentMetrics, Dashboard, LogRecordOut
from exporter.config.dependencies import DATABASE_KINDS
from exporter.health.history import Sample
from exporter.thresholds import Signal, Thresholds

Unit = Literal["ratio", "seconds", "per_second", "count"]


class SeriesOut(BaseModel):
    """One key number: its current value, its history and the threshold drawn on it."""

    id: str = Field(description="stable id: cpu, memory, disk:<mount>, qps, error_rate, "
                    "latency_p95, dependency:<name>, queue:<backend>/<queue>")
    label: str
    unit: Unit = Field(description="ratio (0..1), seconds, per_second or count")
    current: float | None = Field(description="the same value as in `metrics`")
    threshold: float | None = Field(description="the lowest `above` of the thresholds on it")
    threshold_alert: str | None
    values: list[float | None] = Field(description="one per `history_ts` entry")


def _threshold(
    thresholds: Thresholds, signal: Signal | None
) -> tuple[float | None, str | None]:
    if signal is None:
        return None, None
    matching = thresholds.for_signal(signal)
    if not matching:
        return None, None
    lowest = min(matching, key=lambda t: t.above)
    return lowest.above, lowest.alert


def _dependency_signal(kind: str) -> Signal | None:
    if kind in DATABASE_KINDS:
        return Signal.database_latency_seconds
    return Signal.redis_latency_seconds if kind == "redis" else None


def build_series(
    current: CurrentMetrics, samples: list[Sample], thresholds: Thresholds
) -> list[SeriesOut]:
    """Every series the status page draws, in display order."""
    out: list[SeriesOut] = []

    def add(
        id: str, label: str, unit: Unit, now: float | None, signal: Signal | None,
        read: Callable[[Sample], float | None],
    ) -> None:
        above, alert = _threshold(thresholds, signal)
        out.append(SeriesOut(
            id=id, label=label, unit=unit, current=now, threshold=above, threshold_alert=alert,
            values=[read(s) for s in samples],
        ))

    add("cpu", "CPU", "ratio", current.cpu_usage_ratio, Signal.cpu_usage_ratio,
        lambda s: s.cpu)
    add("memory", "Memory", "ratio", current.memory_usage_ratio, Signal.memory_usage_ratio,
        lambda s: s.memory)
    for mount, ratio in sorted(current.disk_usage_ratio.items()):
        add(f"disk:{mount}", f"Disk {mount}", "ratio", ratio, Signal.disk_usage_ratio,
            lambda s, m=mount: s.disk.get(m))  # type: ignore[misc]
    add("qps", "Requests/s", "per_second", current.qps, None, lambda s: s.qps)
    add("error_rate", "Error rate", "ratio", current.error_rate, Signal.http_error_ratio,
        lambda s: s.error_rate)
    add("latency_p95", "Latency p95", "seconds", current.latency_seconds.p95,
        Signal.http_latency_p95_seconds, lambda s: s.p95)
    kinds = samples[-1].dependency_kind if samples else {}
    for name, latency in sorted(current.dependency_latency_seconds.items()):
        kind = kinds.get(name, "")
        add(f"dependency:{name}", f"{name} ({kind})" if kind else name, "seconds", latency,
            _dependency_signal(kind), lambda s, n=name: s.dependency_latency.get(n))  # type: ignore[misc]
    for queue, depth in sorted(current.queue_depth.items()):
        add(f"queue:{queue}", f"Queue {queue}", "count", depth, None,
            lambda s, q=queue: s.queue_depth.get(q))  # type: ignore[misc]
    return out


class StatusDashboard(Dashboard):
    """`Dashboard` plus what the status page draws: sparklines, top errors and slow requests."""

    history_interval_seconds: float
    history_ts: list[float] = Field(description="unix time of each history sample, oldest first")
    series: list[SeriesOut]
    top_errors: list[TopErrorGroup] = Field(
        description="error groups with the most events in the last hour (empty without a store)"
    )
    slow_requests: list[LogRecordOut] = Field(
        description="the latest requests over the API latency threshold, in the last hour"
    )
