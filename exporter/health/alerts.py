"""In-process alerting over the history, with Prometheus semantics, so no Prometheus is needed.

Each evaluation (after each history point) compares every threshold's signal, as its rule sees
it (`Point.alerting`: a rate over the rule's window, a gauge per series), with `above`, and
moves every (threshold, labels) pair as Prometheus moves an alert: inactive -> pending at the
first true evaluation -> firing once it has held for `for` -> resolved when false again (or when
the series is gone). A pending alert whose condition turns false goes back to inactive without
firing. The clock is injectable so tests drive time.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Literal

from exporter.health.history import Point
from exporter.signals import CATALOGUE, Labels
from exporter.thresholds import Threshold, Thresholds

log = logging.getLogger("exporter.alerts")

AlertState = Literal["pending", "firing", "resolved"]
# Resolved alerts stay visible this long, as Prometheus keeps sending them to Alertmanager.
KEEP_RESOLVED_SECONDS = 900.0


@dataclass(frozen=True)
class Alert:
    """One alert instance: a threshold applied to one subject (a mount point, a dependency)."""

    key: str
    alert: str
    signal: str
    severity: str
    summary: str
    labels: Labels
    state: AlertState
    value: float
    threshold: float
    since: float  # when the condition became true (Prometheus' activeAt)
    fired_at: float | None = None
    resolved_at: float | None = None
    silenced: bool = False  # silenced or inhibited in Alertmanager (over-Prometheus mode)


class AlertEvaluator:
    """Holds alert state between evaluations; `evaluate(point)` advances it, at the point's
    time (as Prometheus stamps an evaluation with its own time)."""

    def __init__(
        self,
        thresholds: Thresholds,
        *,
        keep_resolved: float = KEEP_RESOLVED_SECONDS,
    ) -> None:
        self._thresholds = thresholds.items()
        self._keep_resolved = keep_resolved
        self._alerts: dict[tuple[str, Labels], Alert] = {}
        self._lock = threading.Lock()

    def evaluate(self, point: Point) -> list[Alert]:
        """Advance every alert with the values in `point`; returns the pending and firing ones."""
        now = point.ts
        with self._lock:
            breaching: set[tuple[str, Labels]] = set()
            for threshold in self._thresholds:
                for labels, value in sorted(point.alerting.get(threshold.signal, {}).items()):
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
                threshold.key, threshold.alert, threshold.signal, threshold.severity,
                threshold.summary, labels, "pending", value, threshold.above, now,
            )
        else:
            alert = replace(alert, value=value)
        if alert.state == "pending" and now - alert.since >= threshold.for_seconds:
            alert = replace(alert, state="firing", fired_at=now)
            signal = CATALOGUE.get(threshold.signal)
            log.warning("alert %s firing: %s (%s > %s)", alert.alert, alert.summary,
                        signal.format(value), signal.format(threshold.above))
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

    def restore(self, alerts: list[Alert]) -> None:
        """Hold exactly `alerts` (another worker's, read from the host's state)."""
        with self._lock:
            self._alerts = {(a.key, a.labels): a for a in alerts}

    def active(self) -> list[Alert]:
        """Pending and firing alerts."""
        with self._lock:
            return self._active()

    def resolved(self) -> list[Alert]:
        """Alerts resolved within the last 15 minutes."""
        with self._lock:
            return [a for a in self._alerts.values() if a.state == "resolved"]
