"""The status page's sparklines: each signal's value per subject, its history and threshold."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from exporter.api.errors import TopErrorGroup
from exporter.api.observability_models import Dashboard, LogRecordOut
from exporter.api.watched_models import TargetsReport
from exporter.health.history import Point
from exporter.signals import CATALOGUE, Labels, Signal
from exporter.thresholds import Thresholds

Unit = Literal["ratio", "seconds", "per_second", "count"]


class SeriesOut(BaseModel):
    """One key number: its current value, its history and the threshold drawn on it."""

    id: str = Field(description="stable id: the signal's name, with ':<subject>' for one of "
                    "several subjects (disk_usage_ratio:/, queue_depth:redis/jobs)")
    signal: str = Field(description="the catalogue's signal (docs/signals.md)")
    label: str
    unit: Unit = Field(description="ratio (0..1), seconds, per_second or count")
    window: str | None = Field(description="what a rate or percentile is taken over; "
                               "null for a gauge (its newest sample)")
    current: float | None = Field(description="the same value as in `metrics`")
    threshold: float | None = Field(description="the lowest `above` of the thresholds on it")
    threshold_alert: str | None
    values: list[float | None] = Field(description="one per `history_ts` entry")


def _threshold(thresholds: Thresholds, signal: Signal) -> tuple[float | None, str | None]:
    matching = thresholds.for_signal(signal.name)
    if not matching:
        return None, None
    lowest = min(matching, key=lambda t: t.above)
    return lowest.above, lowest.alert


def _label(signal: Signal, labels: Labels, subject: str) -> str:
    if not subject:
        return signal.title
    kind = dict(labels).get("kind")
    return f"{signal.title} {subject}" + (f" ({kind})" if kind else "")


def build_series(
    points: list[Point], thresholds: Thresholds, window: str, instance: str | None = None
) -> list[SeriesOut]:
    """Every tile the status page draws, in catalogue order: one per signal without subjects
    (an idle service still shows its error rate, empty), and one per subject seen in the
    history (a mount point, a dependency, a queue, a task)."""
    out = []
    for signal in CATALOGUE:
        if not signal.display.tile:
            continue
        above, alert = _threshold(thresholds, signal)
        seen = {labels for p in points for labels in p.of(instance).get(signal.name, {})}
        if not signal.subject:
            seen.add(())
        for labels in sorted(seen):
            now = points[-1].of(instance).get(signal.name, {}).get(labels) if points else None
            subject = signal.subject_key(labels)
            out.append(SeriesOut(
                id=f"{signal.name}:{subject}" if subject else signal.name, signal=signal.name,
                label=_label(signal, labels, subject), unit=signal.unit,
                window=None if signal.per_series else window, current=now, threshold=above,
                threshold_alert=alert,
                values=[p.of(instance).get(signal.name, {}).get(labels) for p in points],
            ))
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
    targets: TargetsReport = Field(description="what the figures are of")
