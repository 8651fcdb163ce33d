"""promtool input series that make a signal read a chosen value: the inverse of its query.

The generated promtool tests feed each threshold's rules one target just above and one just
below the threshold. The series come from the signal's query and its `Fixture` labels: a gauge
holds the value, a rate grows by it per second, a ratio splits 100 events a step between its
numerator and the rest, a quantile's buckets put the rank in the middle of the bucket around
the value. Each series is checked against the query's own matchers, so a catalogue entry whose
fixture labels would not be selected fails here, not in promtool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from exporter.signals.frames import Input
from exporter.signals.model import Signal
from exporter.signals.promql import bucket_quantile
from exporter.signals.query import Gauge, Metric, Quantile, Rate, Ratio


@dataclass(frozen=True)
class Case:
    """Input series (selector, promtool values) and the labels and value of the alert."""

    series: list[tuple[str, str]]
    labels: dict[str, str]
    value: float


def _selector(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def _checked(metric: Metric, labels: dict[str, str], wanted: bool = True) -> dict[str, str]:
    if Input(metric.name, metric.matchers, "gauge", ()).matches(labels) != wanted:
        verb = "are not" if wanted else "are"
        raise ValueError(f"fixture labels {labels} {verb} selected by {metric.selector()}")
    return labels


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def _own(metric: Metric, labels: dict[str, str]) -> dict[str, str]:
    """`labels` (our names) as `metric` names them."""
    return {metric.label(k): v for k, v in labels.items()}


def forms(signal: Signal) -> int:
    """How many namings the signal's series may come in (`case`'s `form`)."""
    query = signal.query
    if isinstance(query, Gauge):
        return 1
    metric = query.buckets.metric if isinstance(query, Quantile) else (
        query.numerator.metric if isinstance(query, Ratio) else query.metric)
    return len(metric.forms())


def case(signal: Signal, value: float, who: str, steps: int, step: float, form: int = 0) -> Case:
    """Series over `steps` steps of `step` seconds under which `signal` reads `value` for the
    target `who` (its job, instance and service labels), and the alert's labels; `form`: the
    naming of the series (0 the default, 1 the OpenTelemetry conventions')."""
    fixture = signal.fixture
    base = {"job": fixture.job, "instance": f"{who}:{fixture.port}", "service": who,
            **fixture.labels}
    query = signal.query
    if isinstance(query, Gauge):
        labels = _checked(query.metric, base)
        return Case([(_selector(query.metric.name, labels), f"{value!r}x{steps}")], labels,
                     value)
    grouped = {k: base[k] for k in signal.levels[0].labels} if signal.levels else {}
    if isinstance(query, Rate):
        metric = query.metric.forms()[form]
        labels = _checked(metric, _own(metric, base))
        return Case([(_selector(metric.name, labels), f"0+{value * step!r}x{steps}")],
                    grouped, value)
    if isinstance(query, Ratio):  # 100 events a step, `value` of them in the numerator
        num, den = query.numerator.metric.forms()[form], query.denominator.metric.forms()[form]
        hit = _checked(num, _own(num, {**base, **fixture.numerator}))
        _checked(den, hit)
        miss = _checked(num, _own(num, {**base, **fixture.other}), wanted=False)
        _checked(den, miss)
        rest, part = 100.0 * (1.0 - value), 100.0 * value
        return Case([
            (_selector(den.name, miss), f"0+{rest!r}x{steps}"),
            (_selector(num.name, hit), f"0+{part!r}x{steps}"),
        ], grouped, value)
    assert isinstance(query, Quantile)
    # `below` of 100 events a step under `low`, the rest under `high`: the rank falls in the
    # middle of (low, high] when q >= 0.5, so the quantile reads `value`.
    low, high = float(f"{value * 0.95:.4g}"), float(f"{value * 1.05:.4g}")  # readable bounds
    below = max(0.0, 200.0 * query.q - 100.0)
    buckets = [(low, below), (high, 100.0), (math.inf, 100.0)]
    metric = query.buckets.metric.forms()[form]
    series = [
        (_selector(metric.name, _checked(metric, {**_own(metric, base), "le": _le(le)})),
         f"0+{count!r}x{steps}")
        for le, count in buckets
    ]
    return Case(series, grouped, bucket_quantile(query.q, buckets))
