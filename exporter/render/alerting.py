"""Alerting rules: one per threshold in thresholds.yaml, plus the stack's own alerts."""

from __future__ import annotations

from typing import Any

from exporter.config.dependencies import DATABASE_KINDS
from exporter.render.celery import celery_rules
from exporter.render.links import dashboard_url, runbook_url
from exporter.render.recording import RecordingNames
from exporter.render.rule import AlertRule, threshold_text
from exporter.thresholds import Signal, Threshold, Thresholds, format_duration

_DATABASES = "|".join(sorted(DATABASE_KINDS))
ALERTING_GROUP = "exporter-alerts"
# Lines given up on the way to Loki, each with a `reason` label: by the exporter's own shipper
# (EXPORTER_LOKI_URL), by Alloy's loki.write and by Promtail's client (the compose stack's
# shipper, scraped as job log-shipper).
SHIPPER_DROPS = (
    "loki_shipper_lines_dropped_total",
    "loki_write_dropped_entries_total",
    "promtail_dropped_entries_total",
)


def _signal_rule(signal: Signal, names: RecordingNames) -> tuple[str, str, str]:
    """(value expression, description opening, dashboard) of a threshold's signal."""
    pct, dur = "{{ $value | humanizePercentage }}", "{{ $value | humanizeDuration }}"
    host = "{{ $labels.instance }} ({{ $labels.service }})"
    dep = "{{ $labels.name }} of {{ $labels.service }}"
    w = names.window
    rules = {
        Signal.cpu_usage_ratio: ("system_cpu_usage_ratio", f"CPU usage of {host} is {pct}", "host"),
        Signal.memory_usage_ratio: (
            "system_memory_usage_ratio", f"Memory usage of {host} is {pct}", "host"),
        Signal.disk_usage_ratio: (
            "system_disk_usage_ratio",
            f"Disk usage of {{{{ $labels.mountpoint }}}} on {host} is {pct}", "host"),
        Signal.http_latency_p95_seconds: (
            names.quantile("service", 95),
            f"The p95 latency of {{{{ $labels.service }}}} over {w} is {dur}", "service"),
        Signal.http_error_ratio: (
            names.error_ratio("service"),
            f"{pct} of the HTTP responses of {{{{ $labels.service }}}} over {w} were 5xx",
            "service"),
        Signal.database_latency_seconds: (
            f'dependency_latency_seconds{{kind=~"{_DATABASES}"}}',
            f"The {{{{ $labels.kind }}}} database {dep} answers SELECT 1 in {dur}",
            "dependencies"),
        Signal.redis_latency_seconds: (
            'dependency_latency_seconds{kind="redis"}',
            f"The Redis dependency {dep} answers PING in {dur}", "dependencies"),
    }
    return rules[signal]


def threshold_rule(threshold: Threshold, names: RecordingNames) -> AlertRule:
    """The rule of one threshold: `signal > above` for `for`."""
    value, opening, dashboard = _signal_rule(threshold.signal, names)
    limit = threshold_text(threshold.signal, threshold.above)
    return AlertRule(
        name=threshold.alert,
        expr=f"{value} > {threshold.above!r}",
        for_seconds=threshold.for_seconds,
        severity=threshold.severity,
        summary=threshold.summary,
        description=f"{opening}; the threshold is {limit} for "
        f"{format_duration(threshold.for_seconds)}.",
        dashboard=dashboard,
        signal=threshold.signal,
        above=threshold.above,
    )


def stack_rules(names: RecordingNames) -> list[AlertRule]:
    """Alerts on the stack itself: scrapes, dependencies, queues and log shipping."""
    w = names.window
    return [
        AlertRule(
            "TargetDown", "up == 0", 60, "critical", "A scrape target is down",
            "Prometheus could not scrape {{ $labels.instance }} (job {{ $labels.job }}, "
            "service {{ $labels.service }}) for 1m: up is {{ $value | humanize }}; the "
            "threshold is up == 0.", "alerts"),
        AlertRule(
            "DependencyDown", "dependency_up == 0", 60, "critical", "A dependency is down",
            "The {{ $labels.kind }} dependency {{ $labels.name }} of {{ $labels.service }} "
            "failed every probe for 1m: dependency_up is {{ $value | humanize }}; the threshold "
            "is dependency_up == 0.", "dependencies"),
        AlertRule(
            "QueueBacklogGrowing", "deriv(queue_depth[10m]) > 0 and queue_depth > 0", 900,
            "warning", "A queue keeps growing",
            "Queue {{ $labels.queue }} ({{ $labels.backend }}) of {{ $labels.service }} grew "
            "by {{ $value | humanize }} messages/s over 10m; the threshold is any growth "
            "for 15m.", "dependencies"),
        AlertRule(
            "LogShipperDroppingLines",
            " or ".join(f"increase({counter}[{w}]) > 0" for counter in SHIPPER_DROPS),
            0, "warning", "Log lines are being dropped on the way to Loki",
            f"{{{{ $labels.service }}}} dropped {{{{ $value | humanize }}}} log lines on the way "
            f"to Loki over {w} (reason {{{{ $labels.reason }}}}); the threshold is any drop.",
            "logs"),
    ]


def alert_rules(thresholds: Thresholds) -> list[AlertRule]:
    """Every alerting rule, thresholds first, in file order."""
    names = RecordingNames(thresholds.render.rate_window)
    return (
        [threshold_rule(t, names) for t in thresholds.items()]
        + stack_rules(names)
        + celery_rules(thresholds)
    )


def rule_entry(rule: AlertRule, thresholds: Thresholds) -> dict[str, Any]:
    """The rule as it is written to alerts.yml."""
    entry: dict[str, Any] = {"alert": rule.name, "expr": rule.expr}
    if rule.for_seconds:
        entry["for"] = format_duration(rule.for_seconds)
    entry["labels"] = {"severity": rule.severity}
    entry["annotations"] = alert_annotations(rule, thresholds)
    return entry


def alert_annotations(rule: AlertRule, thresholds: Thresholds) -> dict[str, str]:
    """summary, description, runbook_url and dashboard_url (Go templates)."""
    options = thresholds.render
    return {
        "summary": rule.summary,
        "description": rule.description,
        "runbook_url": runbook_url(options, rule.name),
        "dashboard_url": dashboard_url(options, rule.dashboard),
    }


def alerting_group(thresholds: Thresholds) -> dict[str, Any]:
    """The one rule group of `prometheus/rules/alerts.yml`."""
    return {
        "name": ALERTING_GROUP,
        "rules": [rule_entry(r, thresholds) for r in alert_rules(thresholds)],
    }
