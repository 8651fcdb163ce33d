"""In-process alerts follow Prometheus: inactive -> pending -> firing after `for` -> resolved.

The evaluator judges what a history point holds for each threshold's signal (`Point.alerting`),
at the point's time; these tests build the points by hand.
"""

from __future__ import annotations

import pytest

from exporter.health.alerts import AlertEvaluator
from exporter.health.history import Point
from exporter.signals import Labels
from exporter.thresholds import Thresholds, parse_thresholds

RULES = """
version: 1
thresholds:
  cpu:
    alert: HighCpuUsage
    signal: cpu_usage_ratio
    above: 0.8
    for: 60s
    severity: warning
    summary: CPU high
  db_latency:
    alert: HighDatabaseLatency
    signal: database_latency_seconds
    above: 0.1
    for: 0s
    severity: critical
    summary: DB slow
  disk:
    alert: DiskAlmostFull
    signal: disk_usage_ratio
    above: 0.9
    for: 20s
    severity: critical
    summary: Disk full
"""


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


def point(ts: float, **signals: dict[Labels, float]) -> Point:
    """A history point holding `signals` (name -> labels -> value) for alerts to judge."""
    return Point(ts, signals, signals)


def cpu(ts: float, value: float) -> Point:
    return point(ts, cpu_usage_ratio={(): value})


@pytest.fixture
def thresholds() -> Thresholds:
    return parse_thresholds(RULES)


def run(evaluator: AlertEvaluator, clock: Clock, cpu_values: list[float]) -> list[str]:
    """Evaluate one CPU value every 10 s; the CPU alert's state after each (or 'inactive')."""
    states = []
    for value in cpu_values:
        evaluator.evaluate(cpu(clock.now, value))
        alerts = {a.key: a for a in evaluator.active() + evaluator.resolved()}
        states.append(alerts["cpu"].state if "cpu" in alerts else "inactive")
        clock.now += 10
    return states


def test_a_breach_shorter_than_for_never_fires(thresholds: Thresholds) -> None:
    clock = Clock()
    evaluator = AlertEvaluator(thresholds)
    # 50 s above 0.8 (six samples span 50 s), then back below: pending, never firing.
    states = run(evaluator, clock, [0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5])
    assert states == ["inactive", *["pending"] * 6, "inactive", "inactive"]
    assert evaluator.resolved() == []


def test_a_breach_longer_than_for_fires_then_recovery_resolves(thresholds: Thresholds) -> None:
    clock = Clock()
    evaluator = AlertEvaluator(thresholds)
    states = run(evaluator, clock, [0.9] * 8 + [0.3, 0.3])
    assert states == [*["pending"] * 6, "firing", "firing", "resolved", "resolved"]
    (resolved,) = evaluator.resolved()
    assert resolved.since == 5_000.0
    assert resolved.fired_at == 5_060.0
    assert resolved.resolved_at == 5_080.0
    assert resolved.threshold == 0.8 and resolved.value == 0.3


def test_firing_alert_carries_value_threshold_and_since(thresholds: Thresholds) -> None:
    clock = Clock()
    evaluator = AlertEvaluator(thresholds)
    run(evaluator, clock, [0.85] * 6 + [0.95])
    (alert,) = evaluator.active()
    assert (alert.alert, alert.state, alert.value, alert.threshold, alert.since) == (
        "HighCpuUsage", "firing", 0.95, 0.8, 5_000.0,
    )


def test_missing_data_counts_as_recovered(thresholds: Thresholds) -> None:
    clock = Clock()
    evaluator = AlertEvaluator(thresholds)
    run(evaluator, clock, [0.9] * 7)
    evaluator.evaluate(point(clock.now))  # no CPU reading at all
    assert [a.state for a in evaluator.resolved()] == ["resolved"]


def test_for_zero_fires_at_once_per_dependency(thresholds: Thresholds) -> None:
    clock = Clock()
    evaluator = AlertEvaluator(thresholds)
    databases = {(("kind", "postgresql"), ("name", "orders")): 0.25,
                 (("kind", "mysql"), ("name", "users")): 0.01}
    (alert,) = evaluator.evaluate(point(
        clock.now, database_latency_seconds=databases,
        redis_latency_seconds={(("kind", "redis"), ("name", "cache")): 0.3}))
    assert alert.state == "firing"
    assert alert.labels == (("kind", "postgresql"), ("name", "orders"))
    assert alert.signal == "database_latency_seconds"


def test_each_mount_point_is_its_own_alert(thresholds: Thresholds) -> None:
    clock = Clock()
    evaluator = AlertEvaluator(thresholds)
    for _ in range(4):
        evaluator.evaluate(point(clock.now, disk_usage_ratio={
            (("mountpoint", "/"),): 0.95, (("mountpoint", "/data"),): 0.97,
            (("mountpoint", "/boot"),): 0.2}))
        clock.now += 10
    states = {a.labels: a.state for a in evaluator.active()}
    assert states == {(("mountpoint", "/"),): "firing", (("mountpoint", "/data"),): "firing"}


def test_resolved_alerts_are_forgotten_after_a_while(thresholds: Thresholds) -> None:
    clock = Clock()
    evaluator = AlertEvaluator(thresholds, keep_resolved=60)
    run(evaluator, clock, [0.9] * 7 + [0.1])
    assert evaluator.resolved()
    clock.now += 61
    evaluator.evaluate(cpu(clock.now, 0.1))
    assert evaluator.resolved() == []


def test_a_new_breach_after_resolution_starts_pending_again(thresholds: Thresholds) -> None:
    clock = Clock()
    evaluator = AlertEvaluator(thresholds)
    states = run(evaluator, clock, [0.9] * 7 + [0.1, 0.9])
    assert states[-3:] == ["firing", "resolved", "pending"]


def test_alerts_judge_what_the_rule_sees_not_the_overview() -> None:
    """With several instances, a gauge's alert judges each series (as the rule does), while
    the overview holds the highest value."""
    thresholds = parse_thresholds(RULES.replace("for: 60s", "for: 0s"))
    evaluator = AlertEvaluator(thresholds)
    both = {(("instance", "a:1"),): 0.95, (("instance", "b:2"),): 0.2}
    fired = evaluator.evaluate(Point(1.0, {"cpu_usage_ratio": {(): 0.95}},
                                     {"cpu_usage_ratio": both}))
    assert [(a.labels, a.state) for a in fired] == [((("instance", "a:1"),), "firing")]
