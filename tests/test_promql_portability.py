"""The catalogue's PromQL runs on Prometheus, Thanos, Mimir and VictoriaMetrics alike: every
expression (each signal's flat query, and every recording and alerting rule) uses only the
functions, aggregations and keywords all four support (docs/scale.md lists them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.render.alerting import rule_groups
from exporter.signals import CATALOGUE
from exporter.thresholds import load_thresholds
from tests.promql_features import Features, features

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = load_thresholds(ROOT / "thresholds.yaml")
WINDOW = THRESHOLDS.render.rate_window
# PromQL's stable functions that Thanos and Mimir (Prometheus' engine) and VictoriaMetrics
# (MetricsQL, a superset) all evaluate. Left out: native-histogram functions (VictoriaMetrics
# has no native histograms), experimental ones (mad_over_time, sort_by_label, info...) and
# holt_winters, which Prometheus 3 renamed double_exponential_smoothing.
PORTABLE_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp",
    "floor", "histogram_quantile", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate",
    "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp",
    "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
    "last_over_time", "present_over_time",
}
PORTABLE_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                         "count_values", "bottomk", "topk", "quantile"}


def expressions() -> list[tuple[str, str]]:
    """(where, expression) for every signal's flat PromQL and every rule."""
    found = []
    for signal in CATALOGUE:
        for per_instance in (False, True):
            for selector in ((), ('job="api"',)):
                found.append((f"signal {signal.name}",
                              signal.promql(WINDOW, per_instance, *selector)))
    for group in rule_groups(THRESHOLDS):
        for rule in group["rules"]:
            found.append((rule.get("record") or rule["alert"], rule["expr"]))
    return found


def used() -> Features:
    total = Features()
    for _, expr in expressions():
        total.merge(features(expr))
    return total


@pytest.mark.parametrize(("where", "expr"), expressions())
def test_each_expression_uses_only_what_every_engine_supports(where: str, expr: str) -> None:
    found = features(expr)
    assert found.functions <= PORTABLE_FUNCTIONS, (where, found.functions - PORTABLE_FUNCTIONS)
    assert found.aggregations <= PORTABLE_AGGREGATIONS, where
    assert not found.subquery and not found.at_modifier, where


def test_docs_scale_lists_exactly_what_the_catalogue_uses() -> None:
    text = (ROOT / "docs" / "scale.md").read_text()
    section = text.split("## The PromQL the catalogue needs", 1)[1]
    listed = set(re.findall(r"^\| `(\w+)` \|", section, re.M))
    total = used()
    assert {"rate", "histogram_quantile", "sum"} <= total.functions | total.aggregations
    assert listed == total.functions | total.aggregations | total.keywords


@pytest.mark.parametrize(("expr", "functions", "aggregations", "keywords"), [
    ('sum by (service, le) (rate(x{route="/a(b)"}[5m]))', {"rate"}, {"sum"}, {"by"}),
    ("histogram_quantile(0.95, sum without (pod) (rate(x[5m])))",
     {"histogram_quantile", "rate"}, {"sum"}, {"without"}),
    ("max(a) by (instance) > 0.8 and on(instance) group_left(x) b",
     set(), {"max"}, {"by", "and", "on", "group_left"}),
    ('label_replace(up, "dst", "$1", "src", "(.*)") or vector(0)',
     {"label_replace", "vector"}, set(), {"or"}),
    ("service:http_requests:rate5m offset 5m unless foo:bar", set(), set(),
     {"offset", "unless"}),
])
def test_the_reader_tells_functions_from_labels_strings_and_rule_names(
    expr: str, functions: set[str], aggregations: set[str], keywords: set[str]
) -> None:
    found = features(expr)
    assert (found.functions, found.aggregations, found.keywords) == (
        functions, aggregations, keywords)


@pytest.mark.parametrize("expr", [
    "mad_over_time(x[5m])", "limitk(2, x)", "histogram_fraction(0, 0.2, x)",
    "max_over_time(rate(x[1m])[5m:1m])", "rate(x[5m] @ 1700000000)",
    "holt_winters(x[5m], 0.5, 0.5)",
])
def test_what_not_every_engine_supports_is_caught(expr: str) -> None:
    with pytest.raises(AssertionError):
        test_each_expression_uses_only_what_every_engine_supports("case", expr)
