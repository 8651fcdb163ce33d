"""Alerting rules: one per threshold in thresholds.yaml, on its catalogue signal, plus the
stack's own alerts."""

from __future__ import annotations

from typing import Any

from exporter.render.links import dashboard_url, runbook_url
from exporter.render.rule import AlertRule, threshold_text
from exporter.render.stack import stack_rules
from exporter.signals import CATALOGUE
from exporter.signals.rules import alert_value, recording_groups
from exporter.thresholds import Threshold, Thresholds, format_duration

ALERTING_GROUP = "exporter-alerts"


def threshold_rule(threshold: Threshold, window: str) -> AlertRule:
    """The rule of one threshold: `signal > above` for `for`."""
    signal = CATALOGUE.get(threshold.signal)
    limit = threshold_text(signal, threshold.above)
    opening = signal.alert_text.replace("{window}", window)
    return AlertRule(
        name=threshold.alert,
        expr=f"{alert_value(signal, window)} > {threshold.above!r}",
        for_seconds=threshold.for_seconds,
        severity=threshold.severity,
        summary=threshold.summary,
        description=f"{opening}; the threshold is {limit} for "
        f"{format_duration(threshold.for_seconds)}.",
        dashboard=signal.display.dashboard,
        signal=signal,
        above=threshold.above,
    )


def alert_rules(thresholds: Thresholds) -> list[AlertRule]:
    """Every alerting rule, thresholds first, in file order."""
    window = thresholds.render.rate_window
    return [threshold_rule(t, window) for t in thresholds.items()] + stack_rules(window)


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


def rule_groups(thresholds: Thresholds) -> list[dict[str, Any]]:
    """Every rule group: the recording groups, then the alerting group (a PrometheusRule
    holds them all; prometheus/rules/ splits them in two files)."""
    window = thresholds.render.rate_window
    return [*recording_groups(CATALOGUE, window), alerting_group(thresholds)]
