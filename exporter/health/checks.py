"""Health checks from the monitor's last results: healthy, degraded or unhealthy, with reasons.

A dependency that is down, a queue that cannot be read, does not exist (RabbitMQ) or is a Redis
key of another type, or a threshold crossed makes a check `degraded`; only a firing alert of
severity `critical` makes it `unhealthy`. The overall status is the worst check's. A healthy
check may still carry a reason (a missing Redis key: an empty queue or a wrong name).

Each signal of the catalogue belongs to one check (its `group`); the check's details hold the
signal's newest values, the very values its alerts judge, and an alert's reason quotes that
value with its window ("HighErrorRate firing: Error rate 8.4 % over 5m > 5 %").
"""

from __future__ import annotations

import time

from exporter.config.dependencies import DATABASE_KINDS
from exporter.health.alerts import Alert
from exporter.health.check import Check, Kind
from exporter.health.monitor import HealthMonitor
from exporter.health.sentry_check import sentry_check
from exporter.signals import CATALOGUE

_QUEUE_STRUCTURES = frozenset({"list", "stream", "queue", "none"})


def alert_reason(alert: Alert, window: str) -> str:
    """`HighErrorRate firing: Error rate 8.4 % over 5m > 5 %`, with the alert's subject."""
    subject = ", ".join(f"{k}={v}" for k, v in alert.labels)
    if alert.signal not in CATALOGUE or alert.value != alert.value:  # no signal, no value
        return (f"{alert.alert} {alert.state}" + (f" ({subject})" if subject else "")
                + (f": {alert.summary}" if alert.summary else "")
                + (" (silenced)" if alert.silenced else ""))
    signal = CATALOGUE.get(alert.signal)
    over = "" if signal.per_series else f" over {window}"
    return (f"{alert.alert} {alert.state}" + (f" ({subject})" if subject else "")
            + f": {signal.title} {signal.format(alert.value)}{over}"
            + f" > {signal.format(alert.threshold)}")


def _apply_alerts(check: Check, alerts: list[Alert], window: str) -> None:
    for alert in alerts:
        severe = alert.state == "firing" and alert.severity == "critical" and not alert.silenced
        check.worsen("unhealthy" if severe else "degraded", alert_reason(alert, window))


def _group_of(alert: Alert) -> str:
    """An alert's check: its signal's group, or "alerts" for one no signal sets (TargetDown)."""
    return CATALOGUE.get(alert.signal).group if alert.signal in CATALOGUE else "alerts"


def _group(alerts: list[Alert], group: str) -> list[Alert]:
    return [a for a in alerts if _group_of(a) == group]


def signal_check(monitor: HealthMonitor, alerts: list[Alert], group: Kind) -> Check:
    """The check of one signal group (system, http, celery): the newest values of its signals
    over the window, and the alerts on them."""
    point = monitor.history.latest()
    check = Check(group, group)
    if point is None:
        check.worsen("degraded", "no sample taken yet")
        return check
    check.checked_at = point.ts
    for signal in CATALOGUE:
        if signal.group != group:
            continue
        for labels, value in sorted(point.values.get(signal.name, {}).items()):
            key = signal.subject_key(labels)
            check.details[f"{signal.name}:{key}" if key else signal.name] = value
    if group != "system":  # rates and percentiles: say over what
        check.details["window"] = monitor.signal_window
    _apply_alerts(check, _group(alerts, group), monitor.signal_window)
    return check


def system_check(monitor: HealthMonitor, alerts: list[Alert]) -> Check:
    """CPU, memory and disk from the newest history point, against the thresholds."""
    return signal_check(monitor, alerts, "system")


def http_check(monitor: HealthMonitor, alerts: list[Alert]) -> Check:
    """Request rate, error ratio and latency percentiles over the window, and their alerts."""
    return signal_check(monitor, alerts, "http")


def dependency_checks(
    monitor: HealthMonitor, alerts: list[Alert], kinds: frozenset[str] | None = None
) -> list[Check]:
    """One check per configured dependency (of `kinds`, when given)."""
    results = monitor.runner.dependency_results()
    latency_alerts = _group(alerts, "dependency")
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
        mine = [a for a in latency_alerts if ("name", dep.name) in a.labels]
        _apply_alerts(check, mine, monitor.signal_window)
        checks.append(check)
    return checks


def queue_checks(monitor: HealthMonitor, alerts: list[Alert] | None = None) -> list[Check]:
    """One check per configured queue; an unreadable queue, a missing RabbitMQ queue or a Redis
    key that is neither a list nor a stream degrades, and so does an alert on its depth."""
    readings = monitor.runner.queue_results()
    depth_alerts = _group(alerts or [], "queue")
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
        mine = [a for a in depth_alerts
                if {("backend", queue.backend), ("queue", queue.queue)} <= set(a.labels)]
        _apply_alerts(check, mine, monitor.signal_window)
        checks.append(check)
    return checks


_PROBED = ("dependency", "queue")  # one check per configured dependency or queue


def engine_checks(monitor: HealthMonitor) -> list[Check]:
    """One check per engine read (over-Prometheus mode): degraded naming it when its last
    call failed, with why and since when the values shown are stale."""
    checks = []
    for engine in monitor.engines:
        state = engine.state
        check = Check(state.name, "engine", details={"url": state.url},
                      checked_at=state.checked_at)
        if state.up is None:
            check.worsen("degraded", f"{state.name} not asked yet")
        elif not state.up:
            check.worsen("degraded", f"{state.name} at {state.url}: {state.reason}")
        checks.append(check)
    point = monitor.history.latest()
    if monitor.engines and point is not None:
        age = time.time() - point.ts
        if age > 2 * monitor.history.interval:
            checks[0].worsen("degraded", f"values are stale: the newest is {age:.0f} s old")
    return checks


def targets_check(monitor: HealthMonitor) -> Check | None:
    """The watched apps (None when the sidecar watches its own registry): degraded naming each
    target that is down or answers something else, while the others still count."""
    source = monitor.targets
    if source is None:
        return None
    check = Check("targets", "targets")
    scrapes = source.last()
    if source.file is not None and source.file.error is not None:
        check.worsen("degraded", f"targets file: {source.file.error}")
    if not scrapes:
        check.worsen("degraded", "no target scraped yet" if source.targets() else
                     "no targets: set EXPORTER_TARGETS or EXPORTER_TARGETS_FILE")
        return check
    check.checked_at = max(s.checked_at for s in scrapes)
    for scrape in scrapes:
        name = scrape.target.instance
        check.details[name] = "up" if scrape.up else scrape.reason
        if not scrape.up:
            check.worsen("degraded", f"{name}: {scrape.reason}")
    up = sum(1 for s in scrapes if s.up)
    check.details["up"] = up
    check.details["watched"] = len(scrapes)
    return check


def full_checks(monitor: HealthMonitor) -> list[Check]:
    """Every check: system, http, each dependency, each queue, and one per other signal group
    (Celery...) that has values or an alert."""
    alerts = monitor.alerts.active()
    point = monitor.history.latest()
    others = [group for group in dict.fromkeys([*(s.group for s in CATALOGUE), "alerts"])
              if group not in ("system", "http", *_PROBED) and (
                  any(a for a in _group(alerts, group)) or (point is not None and any(
                      point.values.get(s.name) for s in CATALOGUE if s.group == group)))]
    targets = targets_check(monitor)
    sentry = sentry_check()
    return [
        *engine_checks(monitor),
        *([targets] if targets is not None else []),
        system_check(monitor, alerts),
        http_check(monitor, alerts),
        *dependency_checks(monitor, alerts),
        *queue_checks(monitor, alerts),
        *(signal_check(monitor, alerts, group) for group in others),
        *([sentry] if sentry is not None else []),
    ]


def database_checks(monitor: HealthMonitor) -> list[Check]:
    """Checks of the PostgreSQL, MySQL/MariaDB, SQLite and DuckDB dependencies."""
    return dependency_checks(monitor, monitor.alerts.active(), DATABASE_KINDS)


def redis_checks(monitor: HealthMonitor) -> list[Check]:
    """Checks of the Redis dependencies."""
    return dependency_checks(monitor, monitor.alerts.active(), frozenset({"redis"}))
