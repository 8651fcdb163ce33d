"""Every LogQL query of the generated dashboards has a stream selector Loki accepts.

Loki cannot run here. It refuses a selector none of whose matchers needs a non-empty value
("queries require at least one regexp or equality matcher that does not have an
empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+"
will": Loki's troubleshooting docs). Grafana's "All" puts a variable's `allValue` into the query
as it is, so each query is checked with every multi-value variable at its all-value and the
free-text ones at a sample value.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = {p.name: json.loads(p.read_text()) for p in
              sorted((ROOT / "grafana" / "dashboards").glob("*.json"))}
# Values for the variables that have no all-value, and for Grafana's built-in ones.
SAMPLES = {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "__interval": "1m",
           "__rate_interval": "1m"}
_SELECTOR = re.compile(r"\{([^{}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,\s*|$)')


def _substitute(expr: str, variables: list[dict[str, Any]]) -> str:
    values = dict(SAMPLES)
    for variable in variables:
        name = variable["name"]
        values[name] = variable["allValue"] if variable.get("includeAll") else SAMPLES[name]
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    assert "$" not in expr, f"a variable without a value in {expr}"
    return expr


def stream_selectors(expr: str) -> list[list[tuple[str, str, str]]]:
    """Each `{...}` of `expr` as its (label, operator, value) matchers."""
    selectors = []
    for body in _SELECTOR.findall(expr):
        matchers, rest = [], body.strip()
        while rest:
            match = _MATCHER.match(rest)
            assert match is not None, f"not a matcher list: {{{body}}}"
            # The value is a Go string literal; our queries only escape quotes and backslashes.
            matchers.append((match[1], match[2], re.sub(r"\\(.)", r"\1", match[3])))
            rest = rest[match.end():]
        selectors.append(matchers)
    return selectors


def _needs_a_value(operator: str, value: str) -> bool:
    """True for a matcher Loki counts: = with a non-empty value, =~ that cannot match ""."""
    if operator == "=":
        return value != ""
    if operator == "=~":
        return re.fullmatch(value, "") is None  # Loki anchors the regex at both ends
    return False  # != and !~ never count


def refused_selectors(expr: str) -> list[str]:
    """The selectors of `expr` Loki would refuse (all of them when it has none)."""
    selectors = stream_selectors(expr)
    if not selectors:
        return [f"no stream selector in {expr}"]
    return [
        "{" + ", ".join(f'{k}{op}"{v}"' for k, op, v in matchers) + "}"
        for matchers in selectors
        if not any(_needs_a_value(op, value) for _, op, value in matchers)
    ]


def loki_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, query as Grafana sends it with "All") of every Loki target."""
    variables = dashboard["templating"]["list"]
    return [
        (panel["title"], _substitute(target["expr"], variables))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == "loki"
    ]


def test_every_loki_query_of_every_dashboard_selects_streams_loki_accepts() -> None:
    queries = [(f"{name}: {title}", expr) for name, board in DASHBOARDS.items()
               for title, expr in loki_queries(board)]
    assert len(queries) >= 5
    refused = [f"{where}: {expr} -> {bad}" for where, expr in queries
               if (bad := refused_selectors(expr))]
    assert refused == [], "Loki refuses these selectors:\n" + "\n".join(refused)


@pytest.mark.parametrize(("expr", "accepted"), [
    ('{service=~".*"}', False),
    ('{service=~".+"}', True),
    ('{service=""}', False),
    ('{service="api"}', True),
    ('{service=~"a|"}', False),
    ('{service!="api"}', False),
    ('{service=~".*", level=~"error|critical"}', True),
    ('sum by (level) (count_over_time({service=~".*"} [1m]))', False),
    ('{service=~".*", kind="access"} | json | duration_ms >= 500', True),
    ('count_over_time({a="1"}[1m]) / count_over_time({b=~".*"}[1m])', False),
])
def test_the_check_follows_lokis_rule(expr: str, accepted: bool) -> None:
    assert (refused_selectors(expr) == []) is accepted


def test_the_check_catches_an_all_value_that_matches_nothing() -> None:
    # The logs dashboard as it was: allValue `.*` made the panels with only a service matcher fail.
    board = json.loads(json.dumps(DASHBOARDS["logs.json"]))
    for variable in board["templating"]["list"]:
        if variable.get("includeAll"):
            variable["allValue"] = ".*"
    refused = {title for title, expr in loki_queries(board) if refused_selectors(expr)}
    assert {"Log lines by level", "Lines of one trace (set the trace id above)"} <= refused
