"""A signal's query, written once: it renders itself as PromQL and evaluates itself in process.

Four shapes cover every signal: `Gauge` (the latest value of each series), `Rate` (per-second
rate of counters, summed), `Ratio` (of two rates, 0 when the numerator has no series) and
`Quantile` (of a histogram's bucket rates). Each knows the series it reads (`inputs()`), its
PromQL for any grouping and label selector, its recording-rule form, and its value over a
window of in-process frames computed with Prometheus' own arithmetic (`signals.promql`).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from exporter.signals.frames import Input, Labels, Window, labels_of
from exporter.signals.promql import bucket_quantile, extrapolated_rate

Op = Literal["=", "=~", "!=", "!~"]


@dataclass(frozen=True)
class Metric:
    """A metric name and the label matchers that pick its series.

    `alternatives`: the same numbers under other names (the OpenTelemetry HTTP conventions',
    FastAPI's own telemetry), each with its own matchers and `renamed` labels (ours, its own):
    a `Rate` reads every form and, for a group that has series in an earlier form, ignores the
    later ones (`or on (...)`), so a service publishing both is not counted twice.
    """

    name: str
    matchers: tuple[tuple[str, Op, str], ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()  # (our label, this metric's label)
    alternatives: tuple[Metric, ...] = ()

    def forms(self) -> tuple[Metric, ...]:
        """This metric, then its alternatives: the order `or` prefers them in."""
        return (self, *self.alternatives)

    def label(self, ours: str) -> str:
        """This metric's name for our label `ours`."""
        for mine, theirs in self.renamed:
            if mine == ours:
                return theirs
        return ours

    def selector(self, *extra: str) -> str:
        """`name{matchers, extra...}` (extra: already rendered matchers such as job="api", on
        our label names: renamed to this metric's)."""
        inner = [f'{label}{op}"{value}"' for label, op, value in self.matchers]
        inner += [self._renamed(e) for e in extra if e]
        return f"{self.name}{{{', '.join(inner)}}}" if inner else self.name

    def _renamed(self, matcher: str) -> str:
        name = _MATCHER_LABEL.match(matcher)
        if name is None or not self.renamed:
            return matcher
        return self.label(name.group(1)) + matcher[name.end(1):]

    def relabelled(self, expr: str, labels: Sequence[str]) -> str:
        """`expr` (a vector of this metric) with our names of `labels` copied from its own."""
        for ours in labels:
            theirs = self.label(ours)
            if theirs != ours:
                expr = f'label_replace({expr}, "{ours}", "$1", "{theirs}", "(.*)")'
        return expr

    def input(self, kind: Literal["counter", "gauge"], keep: tuple[str, ...]) -> Input:
        """The in-process input that reads this metric's series, keeping `keep` labels (our
        names; read under this metric's)."""
        own = tuple(self.label(label) for label in keep)
        return Input(self.name, self.matchers, kind, own, keep if own != keep else ())


_MATCHER_LABEL = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=|!=|=~|!~)")


@dataclass(frozen=True)
class Level:
    """A recording-rule level: its name (the rule name's first part) and the labels it keeps."""

    name: str
    labels: tuple[str, ...]


# Records a rule (name, expression) once and answers the name to use in other expressions.
RuleSink = Callable[[str, str], str]


def _sum(labels: Sequence[str], inner: str) -> str:
    return f"sum by ({', '.join(labels)}) ({inner})" if labels else f"sum({inner})"


def summed(metric: Metric, by: Sequence[str], keep: Sequence[str],
           inner: Callable[[Metric], str]) -> str:
    """`sum by (by, keep) (inner(form))` for each form of `metric`, joined so that each `by`
    group comes from the first form that has it: `(A or on (by) B)`."""
    labels = [*by, *keep]
    parts = [_sum(labels, form.relabelled(inner(form), labels)) for form in metric.forms()]
    return parts[0] if len(parts) == 1 else "(" + f" or on ({', '.join(by)}) ".join(parts) + ")"


@dataclass(frozen=True)
class Gauge:
    """The latest value of each series of `metric`; `subject` labels tell the series apart."""

    metric: Metric
    subject: tuple[str, ...] = ()

    def inputs(self) -> Iterator[Input]:
        """The series this query reads."""
        yield self.metric.input("gauge", ("instance", *self.subject))

    def promql(self, window: str, by: Sequence[str] | None = None, *selector: str) -> str:
        """Each series as it is (`by` None), or the highest per `by` and subject labels."""
        expr = self.metric.selector(*selector)
        if by is None:
            return expr
        labels = [*by, *self.subject]
        return f"max by ({', '.join(labels)}) ({expr})" if labels else f"max({expr})"

    def rule_expr(self, level: Level, window: str, sink: RuleSink) -> str:
        """Gauges need no recording rule: the series itself."""
        return self.metric.selector()

    def evaluate(self, window: Window, by: Sequence[str] | None) -> dict[Labels, float]:
        """Values in the newest frame: per series (`by` None) or the highest per `by` and
        subject labels."""
        if not window.frames:
            return {}
        source = next(self.inputs())
        keep = None if by is None else [*by, *self.subject]
        out: dict[Labels, float] = {}
        for key, value in window.frames[-1].values.get(source, {}).items():
            labels = labels_of(source.labels, key, keep)
            out[labels] = max(value, out.get(labels, -math.inf))
        return out


@dataclass(frozen=True)
class Rate:
    """`sum by (...) (rate(metric[window]))`; `record` names its recording rule, if any."""

    metric: Metric
    record: str = ""  # "{level}:http_requests:rate{window}"
    keep: tuple[str, ...] = ()  # labels every result keeps (le for buckets)
    subject: tuple[str, ...] = ()  # labels results may be grouped by (task)

    def inputs(self) -> Iterator[Input]:
        """The series this query reads: one input per form of the metric."""
        for form in self.metric.forms():
            yield form.input("counter", ("instance", *self.subject, *self.keep))

    def promql(self, window: str, by: Sequence[str] | None = None, *selector: str) -> str:
        """The flat expression, summed by `by` (and the kept labels); over several forms of
        the metric, each group from the first form that has it."""
        return summed(self.metric, by or (), self.keep,
                      lambda form: f"rate({form.selector(*selector)}[{window}])")

    def rule_expr(self, level: Level, window: str, sink: RuleSink) -> str:
        """The expression at `level`, recorded under `record` when it has one."""
        expr = self.promql(window, level.labels)
        if not self.record:
            return expr
        return sink(self.record.format(level=level.name, window=window), expr)

    def evaluate(self, window: Window, by: Sequence[str] | None) -> dict[Labels, float]:
        """Per-second rates over the window ending at the newest frame, summed by `by`; a
        group of a later form of the metric counts only when no earlier form has it."""
        memo = (self, None if by is None else tuple(by))
        if memo in window.cache:
            return window.cache[memo]  # type: ignore[no-any-return]
        wanted = [*(by or ()), *self.keep]
        result: dict[Labels, float] = {}
        groups: set[tuple[str, ...]] = set()
        for source in self.inputs():
            rates = _rates(window, source, wanted)
            mine = {_group(labels, by or ()) for labels in rates}
            result.update((k, v) for k, v in rates.items() if _group(k, by or ()) not in groups)
            groups |= mine
        window.cache[memo] = result
        return result


def _group(labels: Labels, by: Sequence[str]) -> tuple[str, ...]:
    """The values of `by` in `labels` ("" for a missing one): what `or on (by)` matches."""
    values = dict(labels)
    return tuple(values.get(name, "") for name in by)


def _rates(window: Window, source: Input, wanted: Sequence[str]) -> dict[Labels, float]:
    """`sum by (wanted) (rate(source[window]))` over the window ending at its newest frame."""
    end = window.end
    start = end - window.seconds
    series: dict[tuple[str, ...], list[tuple[float, float]]] = defaultdict(list)
    first_raw: dict[tuple[str, ...], float] = {}
    for frame in window.frames:
        if start <= frame.at <= end:
            raw = frame.raw.get(source, {})
            for key, value in frame.values.get(source, {}).items():
                series[key].append((frame.at, value))
                if key not in first_raw:
                    first_raw[key] = raw.get(key, value)
    out: dict[Labels, float] = defaultdict(float)
    for key, points in series.items():
        rate = extrapolated_rate(points, start, end, first_raw[key])
        if rate is not None:
            out[labels_of(source.labels, key, wanted)] += rate
    return dict(out)


@dataclass(frozen=True)
class Ratio:
    """`(numerator or denominator * 0) / denominator`: no failures yet reads 0, not nothing."""

    numerator: Rate
    denominator: Rate

    def __post_init__(self) -> None:
        if self.numerator.subject != self.denominator.subject:
            raise ValueError("a Ratio's two rates must have the same subject labels")

    @property
    def subject(self) -> tuple[str, ...]:
        """The labels results may be grouped by."""
        return self.numerator.subject

    def inputs(self) -> Iterator[Input]:
        """The series this query reads."""
        yield from self.numerator.inputs()
        yield from self.denominator.inputs()

    def promql(self, window: str, by: Sequence[str] | None = None, *selector: str) -> str:
        """The flat expression, grouped by `by`."""
        num = self.numerator.promql(window, by, *selector)
        den = self.denominator.promql(window, by, *selector)
        return f"({num} or {den} * 0) / {den}"

    def rule_expr(self, level: Level, window: str, sink: RuleSink) -> str:
        """Over the two rates' recording rules."""
        num = self.numerator.rule_expr(level, window, sink)
        den = self.denominator.rule_expr(level, window, sink)
        return f"({num} or {den} * 0) / {den}"

    def evaluate(self, window: Window, by: Sequence[str] | None) -> dict[Labels, float]:
        """The ratio per `by` group; a group without traffic has none (Prometheus' NaN)."""
        num = self.numerator.evaluate(window, by)
        den = self.denominator.evaluate(window, by)
        return {labels: num.get(labels, 0.0) / total for labels, total in den.items() if total}


@dataclass(frozen=True)
class Quantile:
    """`histogram_quantile(q, <bucket rates by le>)`."""

    q: float
    buckets: Rate = field()  # a Rate over `<histogram>_bucket` keeping `le`

    def __post_init__(self) -> None:
        if "le" not in self.buckets.keep:
            raise ValueError("a Quantile's bucket rate must keep the le label")

    @property
    def subject(self) -> tuple[str, ...]:
        """The labels results may be grouped by."""
        return self.buckets.subject

    def inputs(self) -> Iterator[Input]:
        """The series this query reads."""
        yield from self.buckets.inputs()

    def promql(self, window: str, by: Sequence[str] | None = None, *selector: str) -> str:
        """The flat expression, grouped by `by`."""
        return f"histogram_quantile({self.q:g}, {self.buckets.promql(window, by, *selector)})"

    def rule_expr(self, level: Level, window: str, sink: RuleSink) -> str:
        """Over the bucket rates' recording rule, when they have one."""
        return f"histogram_quantile({self.q:g}, {self.buckets.rule_expr(level, window, sink)})"

    def evaluate(self, window: Window, by: Sequence[str] | None) -> dict[Labels, float]:
        """The quantile per `by` group; none where the histogram saw nothing in the window."""
        groups: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for labels, rate in self.buckets.evaluate(window, by).items():
            rest = tuple(pair for pair in labels if pair[0] != "le")
            le = dict(labels).get("le", "+Inf")
            groups[rest].append((float(le), rate))
        out = {}
        for labels, buckets in groups.items():
            value = bucket_quantile(self.q, buckets)
            if not math.isnan(value):
                out[labels] = value
        return out


Query = Gauge | Rate | Ratio | Quantile
