"""`prometheus/tests/alerts_test.yml`: promtool unit tests generated from the same thresholds.

For each threshold alert, one target reads its signal just above the threshold and one just
below (series made by the signal's own fixture, `signals.fixtures`): the first must not fire
one evaluation before `for` has passed and must fire exactly when it has, with the expected
labels and annotations; the second must never fire. The stack's own alerts get the same pair
(down vs up, growing vs flat, dropping vs not). Generated tests share the generator's
mistakes: `prometheus/tests/handwritten_test.yml` holds cases written by hand beside them.
"""

from __future__ import annotations

from typing import Any

from exporter.render.alerting import ALERTING_GROUP, alert_annotations, alert_rules
from exporter.render.gotemplate import expand
from exporter.render.rule import AlertRule
from exporter.render.stack import NEEDS_TWO_SAMPLES, STEP, Side, stack_sides
from exporter.signals import CATALOGUE, Gauge
from exporter.signals.fixtures import case, forms
from exporter.signals.rules import recording_groups
from exporter.thresholds import Thresholds, format_duration

_FORMS = {1: "OpenTelemetry names"}


def _threshold_side(rule: AlertRule, value: float, who: str, steps: int, form: int) -> Side:
    assert rule.signal is not None
    found = case(rule.signal, value, who, steps, STEP, form)
    return Side(found.series, found.labels, found.value)


def _sides(rule: AlertRule, steps: int, form: int = 0) -> tuple[Side | None, Side]:
    """(above, below) for a threshold rule; above is None when nothing can exceed it."""
    assert rule.signal is not None and rule.above is not None
    above = rule.above
    if rule.signal.unit == "ratio":
        over = above + 0.01 if above + 0.01 <= 1.0 else None
        under = above - 0.01 if above > 0.02 else above / 2
    else:
        over, under = above * 1.1, above * 0.9
    over_side = None if over is None else _threshold_side(rule, over, "over", steps, form)
    return over_side, _threshold_side(rule, under, "under", steps, form)


def _starts_at(rule: AlertRule) -> float:
    """When the condition first holds: rate(), deriv() and increase() need two samples."""
    if rule.signal is not None and not isinstance(rule.signal.query, Gauge):
        return STEP
    return STEP if rule.name in NEEDS_TWO_SAMPLES else 0.0


def _expected(rule: AlertRule, side: Side, thresholds: Thresholds, seconds: float) -> (
        dict[str, Any]):
    labels = {**side.alert_labels, "severity": rule.severity}
    value = side.at(seconds)
    return {
        "exp_labels": labels,
        "exp_annotations": {
            k: expand(v, labels, value) for k, v in alert_annotations(rule, thresholds).items()
        },
    }


def _tests(rule: AlertRule, thresholds: Thresholds) -> list[dict[str, Any]]:
    """The promtool test groups of one rule: usually one, one per counter for the shipper."""
    fires_at = _starts_at(rule) + rule.for_seconds
    steps = int(fires_at / STEP) + 6
    pairs: list[tuple[str, Side | None, Side]]
    if rule.signal is not None:  # one pair per naming of its series
        pairs = [(_FORMS[form] if form else "", *_sides(rule, steps, form))
                 for form in range(forms(rule.signal))]
    else:
        pairs = list(stack_sides(rule, steps))
    return [_test(rule, thresholds, fires_at, what, over, under) for what, over, under in pairs]


def _test(
    rule: AlertRule, thresholds: Thresholds, fires_at: float, what: str, over: Side | None,
    under: Side,
) -> dict[str, Any]:
    sides = [c for c in (over, under) if c is not None]
    checks: list[dict[str, Any]] = []
    if fires_at >= STEP:  # one evaluation earlier: pending, not firing
        checks.append({"eval_time": format_duration(fires_at - STEP), "alertname": rule.name,
                       "exp_alerts": []})
    for seconds in (fires_at, fires_at + 4 * STEP):  # fires exactly then, and keeps firing
        firing = [_expected(rule, over, thresholds, seconds)] if over is not None else []
        checks.append({"eval_time": format_duration(seconds), "alertname": rule.name,
                       "exp_alerts": firing})
    side = "above" if rule.signal is not None else "in trouble"
    return {
        "name": f"{rule.name}{f' ({what})' if what else ''}: fires {side} after "
        f"{format_duration(rule.for_seconds)}, silent otherwise",
        "interval": format_duration(STEP),
        "input_series": [{"series": s, "values": v} for c in sides for s, v in c.series],
        "alert_rule_test": checks,
    }


def alert_tests(thresholds: Thresholds) -> dict[str, Any]:
    """The whole promtool test file (relative rule paths: it lives in prometheus/tests/)."""
    groups = [g["name"] for g in recording_groups(CATALOGUE, thresholds.render.rate_window)]
    return {
        "rule_files": ["../rules/recording.yml", "../rules/alerts.yml"],
        "evaluation_interval": format_duration(STEP),
        # Without an order promtool evaluates the groups in random order, and an alert on a
        # recording rule would become active one step late now and then.
        "group_eval_order": [*groups, ALERTING_GROUP],
        "tests": [test for rule in alert_rules(thresholds) for test in _tests(rule, thresholds)],
    }
