"""Alerts as the real engines have them: firing (and silenced) from Alertmanager's API v2,
pending from Prometheus' alerts API, with the in-process evaluator's interface.

Without an Alertmanager, firing alerts come from Prometheus too. An alert that goes away is
listed as resolved for 15 minutes, as the in-process evaluator does. Alerts are those of the
watched service: those whose labels match the `service` matchers of EXPORTER_SERVICE_SELECTOR
(rate alerts keep only `service`; gauge alerts keep every label of the series), all of them when
the selector has none.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from typing import Any

from exporter.health.alerts import KEEP_RESOLVED_SECONDS, Alert
from exporter.health.engines import EngineClient
from exporter.health.history import Point
from exporter.signals import Input
from exporter.thresholds import Thresholds

_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_HIDDEN = ("alertname", "severity")


def service_matchers(selector: str) -> tuple[tuple[str, str, str], ...]:
    """The matchers of `selector` on `service`, the label every generated alert keeps."""
    return tuple((k, op, v) for k, op, v in _MATCHER.findall(selector) if k == "service")


def _time(text: str | None) -> float | None:
    if not text or text.startswith("0001-"):
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class EngineAlerts:
    """Refreshed each interval (`evaluate`); `active()`, `resolved()` and `silences()` read."""

    def __init__(
        self, prometheus: EngineClient, alertmanager: EngineClient | None,
        thresholds: Thresholds, selector: str, keep_resolved: float = KEEP_RESOLVED_SECONDS,
    ) -> None:
        self.prometheus, self.alertmanager = prometheus, alertmanager
        self._thresholds = {t.alert: t for t in thresholds.items()}
        self._filter = Input("ALERTS", service_matchers(selector), "gauge", ())
        self._keep_resolved = keep_resolved
        self._lock = threading.Lock()
        self._active: dict[tuple[str, tuple[tuple[str, str], ...]], Alert] = {}
        self._resolved: dict[tuple[str, tuple[tuple[str, str], ...]], Alert] = {}
        self._silences: list[dict[str, Any]] = []

    def _alert(self, labels: dict[str, str], annotations: dict[str, str], state: str,
               since: float | None, fired: float | None, value: float | None,
               silenced: bool) -> Alert:
        name = labels.get("alertname", "")
        threshold = self._thresholds.get(name)
        return Alert(
            key=threshold.key if threshold else "", alert=name,
            signal=threshold.signal if threshold else "",
            severity=labels.get("severity", ""), summary=annotations.get("summary", ""),
            labels=tuple(sorted((k, v) for k, v in labels.items() if k not in _HIDDEN)),
            state="firing" if state == "firing" else "pending",
            value=value if value is not None else float("nan"),
            threshold=threshold.above if threshold else float("nan"),
            since=since or time.time(), fired_at=fired, silenced=silenced,
        )

    def refresh(self) -> None:
        """Read the engines now; an engine that fails leaves the alerts as they were."""
        rules = self.prometheus.get("/api/v1/alerts")["data"]["alerts"]
        found: dict[tuple[str, tuple[tuple[str, str], ...]], Alert] = {}
        values: dict[tuple[tuple[str, str], ...], float] = {}
        for item in rules:
            labels = item["labels"]
            if not self._filter.matches(labels):
                continue
            key = tuple(sorted(labels.items()))
            values[key] = float(item.get("value") or "nan")
            if item["state"] == "pending" or self.alertmanager is None:
                alert = self._alert(labels, item.get("annotations", {}), item["state"],
                                    _time(item.get("activeAt")), None, values[key], False)
                found[(alert.alert, alert.labels)] = alert
        if self.alertmanager is not None:
            for item in self.alertmanager.get("/api/v2/alerts", {"active": "true",
                                                                 "silenced": "true",
                                                                 "inhibited": "true"}):
                labels = item["labels"]
                if not self._filter.matches(labels):
                    continue
                status = item.get("status", {})
                silenced = bool(status.get("silencedBy") or status.get("inhibitedBy"))
                started = _time(item.get("startsAt"))
                alert = self._alert(labels, item.get("annotations", {}), "firing", started,
                                    started, values.get(tuple(sorted(labels.items()))), silenced)
                found[(alert.alert, alert.labels)] = alert
            silences = self.alertmanager.get("/api/v2/silences")
            self._silences = [s for s in silences if s.get("status", {}).get("state") == "active"]
        self._settle(found)

    def _settle(self, found: dict[tuple[str, tuple[tuple[str, str], ...]], Alert]) -> None:
        now = time.time()
        with self._lock:
            for ident, alert in self._active.items():
                if ident not in found and alert.state == "firing":
                    self._resolved[ident] = Alert(**{**alert.__dict__, "state": "resolved",
                                                     "resolved_at": now})
            for ident in found:
                self._resolved.pop(ident, None)
            self._resolved = {k: a for k, a in self._resolved.items()
                              if a.resolved_at is not None
                              and now - a.resolved_at <= self._keep_resolved}
            self._active = found

    def evaluate(self, point: Point) -> list[Alert]:
        """Nothing to compute here (the engines evaluate): the alerts as last read."""
        return self.active()

    def active(self) -> list[Alert]:
        """Pending and firing alerts of the watched service."""
        with self._lock:
            return list(self._active.values())

    def resolved(self) -> list[Alert]:
        """Alerts that went away within the last 15 minutes."""
        with self._lock:
            return list(self._resolved.values())

    def silences(self) -> list[dict[str, Any]]:
        """Alertmanager's active silences, as its API v2 gives them."""
        with self._lock:
            return list(self._silences)
