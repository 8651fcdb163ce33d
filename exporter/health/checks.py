"""Health checks from the monitor's last results: healthy, degraded or unhealthy, with reasons.

A dependency that is down, a queue that cannot be read, does not exist (RabbitMQ) or is a Redis
key of another type, or a threshold crossed makes a check `degraded`; only a firing alert of
severity `critical` makes it `unhealthy`. The overall status is the worst check's. A healthy
check may still carry a reason (a missing Redis key: an empty queue or a wrong name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from exporter.config.dependencies import DATABASE_KINDS
from exporter.health.alerts import Alert
from exporter.health.monitor import HealthMonitor
from exporter.thresholds import Signal

Status = Literal["healthy", "degraded", "unhealthy"]
_RANK: dict[str, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}
Detail = float | int | str | bool | None


@dataclass
class Check:
    """One health check's outcome."""

    name: str
    kind: Literal["system", "http", "dependency", "queue"]
    status: Status = "healthy"
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Detail] = field(default_factory=dict)
    checked_at: float | None = None

    def worsen(self, status: Status, reason: str) -> None:
        """Record `reason`; the status only ever gets worse."""
        self.reasons.append(reason)
        if _RANK[status] > _RANK[self.status]:
            self.status = status

    @property
    def reason(self) -> str:
        """The reasons joined, or "ok"."""
        return "; ".join(self.reasons) or "ok"


def worst(statuses: list[Status]) -> Status:
    """The worst of `statuses` (healthy when empty)."""
    return max(statuses, key=lambda s: _RANK[s], default="healthy")


_SYSTEM_SIGNALS = (Signal.cpu_usage_ratio, Signal.memory_usage_ratio, Signal.disk_usage_ratio)
_HTTP_SIGNALS = (Signal.http_latency_p95_seconds, Signal.http_error_ratio)
_QUEUE_STRUCTURES = frozenset({"list", "stream", "queue", "none"})


def _apply_alerts(check: Check, alerts: list[Alert], keys: set[str]) -> None:
    for alert in alerts:
        if alert.key not in keys:
            continue
        subject = ", ".join(f"{k}={v}" for k, v in alert.labels)
        text = f"{alert.alert} {alert.state}" + (f" ({subject})" if subject else "")
        text += f": {alert.value:g} > {alert.threshold:g}"
        severe = alert.state == "firing" and alert.severity == "critical"
        check.worsen("unhealthy" if severe else "degraded", text)


def _keys(monitor: HealthMonitor, signals: tuple[Signal, ...]) -> set[str]:
    return {t.key for t in monitor.thresholds.items() if t.signal in signals}


def system_check(monitor: HealthMonitor, alerts: list[Alert]) -> Check:
    """CPU, memory and disk from the newest history sample, against the thresholds."""
    sample = monitor.history.latest()
    check = Check("system", "system")
    if sample is None:
        check.worsen("degraded", "no sample taken yet")
        return check
    check.checked_at = sample.ts
    check.details = {"cpu_usage_ratio": sample.cpu, "memory_usage_ratio": sample.memory}
    for mount, ratio in sample.disk.items():
        check.details[f"disk_usage_ratio:{mount}"] = ratio
    _apply_alerts(check, alerts, _keys(monitor, _SYSTEM_SIGNALS))
    return check


def http_check(monitor: HealthMonitor, alerts: list[Alert]) -> Check:
    """Latency and error-rate alerts of the HTTP traffic."""
    check = Check("http", "http")
    stats = monitor.history.over(60.0)
    if stats is not None:
        qps, error_rate, _, p95, _ = stats
        # Over the last minute; the alerts in the reason judge each history sample (10 s),
        # as Prometheus judges each evaluation: the two figures may differ, and say so.
        check.details = {"qps": qps, "error_rate": error_rate, "latency_p95_seconds": p95,
                         "window_seconds": 60.0}
    _apply_alerts(check, alerts, _keys(monitor, _HTTP_SIGNALS))
    return check


def dependency_checks(
    monitor: HealthMonitor, alerts: list[Alert], kinds: frozenset[str] | None = None
) -> list[Check]:
    """One check per configured dependency (of `kinds`, when given)."""
    results = monitor.runner.dependency_results()
    latency_keys = _keys(
        monitor, (Signal.database_latency_seconds, Signal.redis_latency_seconds)
    )
    checks = []
    for dep in monitor.runner.dependencies:
        if kinds is not None and dep.kind not in kinds:
            continue
        check = Check(dep.name, "dependency", details={"kind": dep.kind, "url": dep.safe_url})
        result = results.get(dep.name)
        if result is None:
            check.worsen("degraded", "not probed yet")
        else:
            check.checked_at = result.checked_at
            check.details["up"] = result.up
            check.details["latency_seconds"] = result.latency
            check.details.update(result.details)
            if not result.up:
                check.worsen("degraded", f"down: {result.reason}")
        mine = [a for a in alerts if ("dependency", dep.name) in a.labels]
        _apply_alerts(check, mine, latency_keys)
        checks.append(check)
    return checks


def queue_checks(monitor: HealthMonitor) -> list[Check]:
    """One check per configured queue; an unreadable queue, a missing RabbitMQ queue or a Redis
    key that is neither a list nor a stream degrades."""
    readings = monitor.runner.queue_results()
    checks = []
    for queue in monitor.runner.queues:
        check = Check(f"{queue.backend}/{queue.queue}", "queue",
                      details={"backend": queue.backend, "queue": queue.queue})
        reading = readings.get((queue.backend, queue.queue))
        if reading is None:
            check.worsen("degraded", "not read yet")
        else:
            check.checked_at = reading.checked_at
            check.details.update(
                depth=reading.depth, consumers=reading.consumers, exists=reading.exists,
                structure=reading.structure,
            )
            for group, pending in reading.pending.items():
                check.details[f"pending:{group}"] = pending
            if not reading.ok:
                check.worsen("degraded", f"unreadable: {reading.reason}")
            elif reading.structure not in _QUEUE_STRUCTURES:  # a hash or set: a wrong name
                check.worsen("degraded", reading.reason)
            elif not reading.exists and queue.backend == "rabbitmq":
                check.worsen("degraded", reading.reason)
            elif not reading.exists:  # Redis drops empty lists: flag, do not degrade
                check.reasons.append(reading.reason)
        checks.append(check)
    return checks


def full_checks(monitor: HealthMonitor) -> list[Check]:
    """Every check: system, http, each dependency, each queue."""
    alerts = monitor.alerts.active()
    return [
        system_check(monitor, alerts),
        http_check(monitor, alerts),
        *dependency_checks(monitor, alerts),
        *queue_checks(monitor),
    ]


def database_checks(monitor: HealthMonitor) -> list[Check]:
    """Checks of the PostgreSQL, MySQL/MariaDB, SQLite and DuckDB dependencies."""
    return dependency_checks(monitor, monitor.alerts.active(), DATABASE_KINDS)


def redis_checks(monitor: HealthMonitor) -> list[Check]:
    """Checks of the Redis dependencies."""
    return dependency_checks(monitor, monitor.alerts.active(), frozenset({"redis"}))
