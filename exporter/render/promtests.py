"""`prometheus/tests/alerts_test.yml`: promtool unit tests generated from the same thresholds.

For each threshold alert, one series sits just above the threshold and one just below: the
first must not fire one evaluation before `for` has passed and must fire exactly when it has,
with the expected labels and annotations; the second must never fire. The stack's own alerts
get the same pair (down vs up, growing vs flat, dropping vs not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exporter.render.alerting import ALERTING_GROUP, SHIPPER_DROPS, alert_annotations, alert_rules
from exporter.render.celery import CELERY_RECORDING_GROUP, FAILURE_ALERT, failure_series
from exporter.render.gotemplate import expand
from exporter.render.recording import RECORDING_GROUP
from exporter.render.rule import AlertRule
from exporter.thresholds import Signal, Thresholds, format_duration

STEP = 15.0  # series interval and evaluation interval of the tests, seconds
_RATE_BASED = {Signal.http_latency_p95_seconds, Signal.http_error_ratio}


@dataclass
class _Case:
    """Input series for one side (above or below) and the labels/value the alert would have."""

    series: list[tuple[str, str]] = field(default_factory=list)  # (selector, values)
    alert_labels: dict[str, str] = field(default_factory=dict)
    value: float = 0.0
    # The value at an evaluation time, when it is not constant (increase() over a filling window).
    value_at: Callable[[float], float] | None = None

    def at(self, seconds: float) -> float:
        """The alert's value at `seconds` into the test."""
        return self.value if self.value_at is None else self.value_at(seconds)


def _selector(metric: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}"


def _target(who: str, job: str = "exporter", port: int = 9480) -> dict[str, str]:
    return {"job": job, "instance": f"{who}:{port}", "service": who}


def _threshold_case(signal: Signal, above: float, value: float, who: str, steps: int) -> _Case:
    target = _target(who)
    gauges = {
        Signal.cpu_usage_ratio: ("system_cpu_usage_ratio", {}),
        Signal.memory_usage_ratio: ("system_memory_usage_ratio", {}),
        Signal.disk_usage_ratio: ("system_disk_usage_ratio", {"mountpoint": "/"}),
        Signal.database_latency_seconds: (
            "dependency_latency_seconds", {"kind": "postgresql", "name": "db"}),
        Signal.redis_latency_seconds: (
            "dependency_latency_seconds", {"kind": "redis", "name": "cache"}),
    }
    if signal in gauges:
        metric, extra = gauges[signal]
        labels = {**target, **extra}
        return _Case([(_selector(metric, labels), f"{value!r}x{steps}")], labels, value)
    route = {**target, "method": "GET", "route": "/items"}
    if signal is Signal.http_error_ratio:  # 100 responses per step, `value` of them 5xx
        ok, failed = 100.0 * (1.0 - value), 100.0 * value
        return _Case([
            (_selector("http_requests_total", {**route, "status": "200"}), f"0+{ok!r}x{steps}"),
            (_selector("http_requests_total", {**route, "status": "500"}),
             f"0+{failed!r}x{steps}"),
        ], {"service": who}, value)
    # Latency: 90 % of requests in the bucket below `edge`, the rest in the next one, so
    # histogram_quantile puts p95 in the middle of the upper bucket: +-5 % around `above`.
    low, high = (above, above * 1.1) if value > above else (above * 0.9, above)
    buckets = [(low, 90.0), (high, 100.0), (float("inf"), 100.0)]
    series = [
        (_selector("http_request_duration_seconds_bucket",
                   {**route, "le": "+Inf" if le == float("inf") else f"{le:g}"}),
         f"0+{count!r}x{steps}")
        for le, count in buckets
    ]
    return _Case(series, {"service": who}, low + (high - low) * 0.5)


def _sides(rule: AlertRule, steps: int) -> tuple[_Case | None, _Case]:
    """(above, below) for a threshold rule; above is None when nothing can exceed it."""
    assert rule.signal is not None and rule.above is not None
    above = rule.above
    if rule.signal.is_ratio:
        over = above + 0.01 if above + 0.01 <= 1.0 else None
        under = above - 0.01 if above > 0.02 else above / 2
    else:
        over, under = above * 1.1, above * 0.9
    over_case = (
        None if over is None else _threshold_case(rule.signal, above, over, "over", steps)
    )
    return over_case, _threshold_case(rule.signal, above, under, "under", steps)


# Labels of each drop counter of LogShipperDroppingLines as scraped: the exporter's own shipper,
# and the stack's Alloy (loki.write) or Promtail (client), job log-shipper.
_SHIPPER_SERIES: dict[str, tuple[str, int, dict[str, str]]] = {
    "loki_shipper_lines_dropped_total": ("exporter", 9480, {"reason": "queue_full"}),
    "loki_write_dropped_entries_total": (
        "log-shipper", 12345,
        {"component_id": "loki.write.loki", "host": "loki:3100", "reason": "ingester_error"}),
    "promtail_dropped_entries_total": (
        "log-shipper", 12345, {"host": "loki:3100", "reason": "rate_limited"}),
}


def _stack_sides(rule: AlertRule, steps: int) -> list[tuple[str, _Case, _Case]]:
    """(what, firing, silent) series for the stack's own alerts: one pair per alert, and one
    per drop counter for the log-shipper alert (one line dropped per step, none before t=0)."""
    if rule.name == "LogShipperDroppingLines":
        pairs = []
        for metric in SHIPPER_DROPS:
            job, port, extra = _SHIPPER_SERIES[metric]
            over, under = ({**_target(who, job, port), **extra} for who in ("over", "under"))
            pairs.append((metric,
                          _Case([(_selector(metric, over), f"0+1x{steps}")], over, 1.0,
                                lambda t: t / STEP),
                          _Case([(_selector(metric, under), f"0+0x{steps}")], under, 0.0)))
        return pairs
    specs: dict[str, tuple[str, dict[str, str], str, str, float]] = {
        "TargetDown": ("up", {}, f"0x{steps}", f"1x{steps}", 0.0),
        "DependencyDown": (
            "dependency_up", {"kind": "redis", "name": "cache"}, f"0x{steps}", f"1x{steps}", 0.0),
        "QueueBacklogGrowing": (
            "queue_depth", {"backend": "redis", "queue": "jobs"},
            f"10+5x{steps}", f"10+0x{steps}", 5.0 / STEP),
    }
    metric, extra, firing, silent, value = specs[rule.name]
    cases = []
    for who, values in (("over", firing), ("under", silent)):
        labels = {**_target(who), **extra}
        cases.append(_Case([(_selector(metric, labels), values)], labels, value))
    return [("", cases[0], cases[1])]


def _celery_sides(rule: AlertRule, steps: int) -> tuple[_Case, _Case]:
    """(above, below) for the task-failure alert: like the HTTP error ratio."""
    assert rule.above is not None
    cases = []
    for who, ratio in (("over", rule.above + 0.01), ("under", rule.above - 0.01)):
        series, labels = failure_series(ratio, who, steps)
        cases.append(_Case(series, labels, ratio))
    return cases[0], cases[1]


def _starts_at(rule: AlertRule) -> float:
    """When the condition first holds: rate(), deriv() and increase() need two samples."""
    if rule.signal in _RATE_BASED or rule.name in ("QueueBacklogGrowing",
                                                   "LogShipperDroppingLines", FAILURE_ALERT):
        return STEP
    return 0.0


def _expected(
    rule: AlertRule, case: _Case, thresholds: Thresholds, seconds: float
) -> dict[str, Any]:
    labels = {**case.alert_labels, "severity": rule.severity}
    value = case.at(seconds)
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
    pairs: list[tuple[str, _Case | None, _Case]]
    if rule.signal is not None:
        pairs = [("", *_sides(rule, steps))]
    elif rule.name == FAILURE_ALERT:
        pairs = [("", *_celery_sides(rule, steps))]
    else:
        pairs = list(_stack_sides(rule, steps))
    return [_test(rule, thresholds, fires_at, what, over, under) for what, over, under in pairs]


def _test(
    rule: AlertRule, thresholds: Thresholds, fires_at: float, what: str, over: _Case | None,
    under: _Case,
) -> dict[str, Any]:
    cases = [c for c in (over, under) if c is not None]
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
        "input_series": [{"series": s, "values": v} for c in cases for s, v in c.series],
        "alert_rule_test": checks,
    }


def alert_tests(thresholds: Thresholds) -> dict[str, Any]:
    """The whole promtool test file (relative rule paths: it lives in prometheus/tests/)."""
    return {
        "rule_files": ["../rules/recording.yml", "../rules/alerts.yml"],
        "evaluation_interval": format_duration(STEP),
        # Without an order promtool evaluates the groups in random order, and an alert on a
        # recording rule would become active one step late now and then.
        "group_eval_order": [RECORDING_GROUP, CELERY_RECORDING_GROUP, ALERTING_GROUP],
        "tests": [test for rule in alert_rules(thresholds) for test in _tests(rule, thresholds)],
    }
