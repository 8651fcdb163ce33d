"""In-process alerting over the history, with Prometheus semantics, so no Prometheus is needed.

Each evaluation (after each history sample) moves every (threshold, labels) pair through
inactive -> pending (condition true) -> firing (true for at least `for`) -> resolved (false again).
A pending alert whose condition turns false goes back to inactive without firing. The clock is
injectable so tests drive time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from exporter.config.dependencies import DATABASE_KINDS
from exporter.health.history import Sample
from exporter.thresholds import Signal, Threshold, Thresholds

log = logging.getLogger("exporter.alerts")

AlertState = Literal["pending", "firing", "resolved"]
Labels = tuple[tuple[str, str], ...]
# Resolved alerts stay visible this long, as Prometheus keeps sending them to Alertmanager.
KEEP_RESOLVED_SECONDS = 900.0


@dataclass(frozen=True)
class Alert:
    """One alert instance: a threshold applied to one subject (a mount point, a dependency)."""

    key: str
    alert: str
    severity: str
    summary: str
    labels: Labels
    state: AlertState
    value: float
    threshold: float
    since: float  # when the condition became true (Prometheus' activeAt)
    fired_at: float | None = None
    resolved_at: float | None = None


def observations(threshold: Threshold, sample: Sample) -> list[tuple[Labels, float]]:
    """The values in `sample` that `threshold` watches, each with the labels of its subject."""
    signal = threshold.signal
    single = {
        Signal.cpu_usage_ratio: sample.cpu,
        Signal.memory_usage_ratio: sample.memory,
        Signal.http_latency_p95_seconds: sample.p95,
        Signal.http_error_ratio: sample.error_rate,
    }
    if signal in single:
        value = single[signal]
        return [] if value is None else [((), value)]
    if signal is Signal.disk_usage_ratio:
        return [((("mountpoint", m),), v) for m, v in sorted(sample.disk.items())]
    wanted = DATABASE_KINDS if signal is Signal.database_latency_seconds else {"redis"}
    return [
        ((("dependency", name),), value)
        for name, value in sorted(sample.dependency_latency.items())
        if sample.dependency_kind.get(name) in wanted
    ]


class AlertEvaluator:
    """Holds alert state between evaluations; `evaluate(sample)` advances it."""

    def __init__(
        self,
        thresholds: Thresholds,
        *,
        clock: Callable[[], float] = time.time,
        keep_resolved: float = KEEP_RESOLVED_SECONDS,
    ) -> None:
        self._thresholds = thresholds.items()
        self._clock = clock
        self._keep_resolved = keep_resolved
        self._alerts: dict[tuple[str, Labels], Alert] = {}
        self._lock = threading.Lock()

    def evaluate(self, sample: Sample) -> list[Alert]:
        """Advance every alert with the values in `sample`; returns the pending and firing ones."""
        now = self._clock()
        with self._lock:
            breaching: set[tuple[str, Labels]] = set()
            for threshold in self._thresholds:
                for labels, value in observations(threshold, sample):
                    if value > threshold.above:
                        breaching.add((threshold.key, labels))
                        self._breach(threshold, labels, value, now)
                    else:
                        self._recover((threshold.key, labels), value, now)
            for ident, alert in list(self._alerts.items()):
                # No value at all (no traffic, dependency down) counts as "condition false".
                if ident not in breaching and alert.state != "resolved":
                    self._recover(ident, alert.value, now)
                elif alert.state == "resolved" and alert.resolved_at is not None and (
                    now - alert.resolved_at > self._keep_resolved
                ):
                    del self._alerts[ident]
            return self._active()

    def _breach(self, threshold: Threshold, labels: Labels, value: float, now: float) -> None:
        ident = (threshold.key, labels)
        alert = self._alerts.get(ident)
        if alert is None or alert.state == "resolved":
            alert = Alert(
                threshold.key, threshold.alert, threshold.severity, threshold.summary, labels,
                "pending", value, threshold.above, now,
            )
        else:
            alert = replace(alert, value=value)
        if alert.state == "pending" and now - alert.since >= threshold.for_seconds:
            alert = replace(alert, state="firing", fired_at=now)
            log.warning("alert %s firing: %s (value %g > %g)", alert.alert, alert.summary,
                        value, threshold.above)
        self._alerts[ident] = alert

    def _recover(self, ident: tuple[str, Labels], value: float, now: float) -> None:
        alert = self._alerts.get(ident)
        if alert is None or alert.state == "resolved":
            return
        if alert.state == "pending":  # never fired: back to inactive, nothing to resolve
            del self._alerts[ident]
            return
        self._alerts[ident] = replace(alert, state="resolved", value=value, resolved_at=now)
        log.info("alert %s resolved", alert.alert)

    def _active(self) -> list[Alert]:
        return [a for a in self._alerts.values() if a.state != "resolved"]

    def active(self) -> list[Alert]:
        """Pending and firing alerts."""
        with self._lock:
            return self._active()

    def resolved(self) -> list[Alert]:
        """Alerts resolved within the last 15 minutes."""
        with self._lock:
            return [a for a in self._alerts.values() if a.state == "resolved"]
