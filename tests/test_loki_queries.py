"""Every LogQL query we publish finds lines whichever way they were shipped.

Three shipping paths reach Loki: the exporter's own shipper, Promtail (promtail/promtail.yml)
and Alloy (alloy/config.alloy). Each query of the dashboards, the Grafana datasources, the docs
and the code may only select streams by labels each path sets (with values it sends), and filter
before any parser on labels or structured metadata keys each path sends: `{service=~".+"} |
trace_id="<id>"` found nothing among our shipper's lines while it sent no structured metadata,
and the Logs dashboard's `kind="access"` panel stayed empty while it set no `kind`.
Our shipper's side is what it really sends (the strict receiver records it); Promtail's and
Alloy's is read from their configs.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.logs.logql import logql
from exporter.logs.query import LEVELS, LogQuery
from tests.logql_parts import (
    Needs,
    needs,
    queries_in_dashboards,
    queries_in_datasources,
    queries_in_docs,
)
from tests.loki_receiver import LokiReceiver, running_receiver
from tests.test_stack_config import (
    ALLOY,
    _alloy_block,
    _alloy_keys,
    _promtail_job,
    _promtail_stages,
)

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
# Values a label takes whichever path ships the line: `level` is the line's own (lower case).
LEVEL_VALUES = {level.lower() for level in LEVELS}


@dataclass(frozen=True)
class ShippingPath:
    """What one shipper sends: stream labels (with the values of those it fixes) and
    structured metadata keys."""

    name: str
    labels: frozenset[str]
    values: dict[str, frozenset[str]]
    metadata: frozenset[str]


def _promtail() -> ShippingPath:
    job, stages = _promtail_job(), _promtail_stages()
    static = [{k: v for k, v in group["labels"].items() if not k.startswith("__")}
              for group in job["static_configs"]]
    labels = {k for group in static for k in group} | set(stages["labels"])
    values = {k: frozenset(group[k] for group in static) for k in static[0]}
    return ShippingPath("promtail", frozenset(labels - set(stages.get("labeldrop", []))),
                        values, frozenset(stages["structured_metadata"]))


def _alloy() -> ShippingPath:
    targets = _alloy_block('local.file_match "exporter"', ALLOY)
    kinds = frozenset(re.findall(r'"kind"\s*=\s*"([^"]+)"', targets))
    process = _alloy_block('loki.process "exporter"', ALLOY)
    labels = _alloy_keys(_alloy_block("values =", _alloy_block("stage.labels", process)))
    metadata = _alloy_keys(_alloy_block("values =", _alloy_block(
        "stage.structured_metadata", process)))
    dropped = set(re.findall(r'"([^"]+)"', _alloy_block("stage.label_drop", process)))
    return ShippingPath("alloy", frozenset((labels | {"kind"}) - dropped), {"kind": kinds},
                        frozenset(metadata))


def _ours(tmp_path: Path, receiver: LokiReceiver) -> ShippingPath:
    """What setup_logging's shipper sent for an app line, an access line and an ingested entry
    (with and without ids), each at several levels."""
    from exporter import load_settings, setup_logging
    from exporter.http.middleware import CompletedRequest

    settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data",
                             log_stdout=False, service_name="shop", loki_url=receiver.url,
                             loki_batch_wait_seconds=0.05, slow_request_seconds=0.1)
    sinks = setup_logging(settings, CollectorRegistry())
    try:
        logger = logging.getLogger("shop.queries")
        logger.info("paid", extra={"trace_id": TRACE, "span_id": SPAN})
        logger.error("payment failed")
        sinks.write_entry(time.time(), "warning", {"message": "ingested", "trace_id": TRACE})
        for seconds, status in ((0.01, 200), (0.5, 200), (0.3, 503)):
            sinks.observe_request(CompletedRequest(
                "GET", "/pay", "/pay", status, seconds, TRACE, SPAN, None, None))
        assert sinks.files.flush()
        assert receiver.wait_for(6, timeout=20)
    finally:
        sinks.close()
    values = receiver.values()
    assert receiver.errors == []
    return ShippingPath(
        "exporter", frozenset.intersection(*(frozenset(v[0]) for v in values)),
        {"kind": frozenset(v[0]["kind"] for v in values)},
        frozenset(key for v in values for key in v[3] or {}))


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> list[ShippingPath]:
    with running_receiver() as receiver:
        ours = _ours(tmp_path_factory.mktemp("shipper"), receiver)
    return [ours, _promtail(), _alloy()]


def _code_queries() -> Iterator[tuple[str, str]]:
    """What the logs API asks Loki (logql.py) for each search it makes."""
    now = datetime.now(timezone.utc)
    for stream in ("app", "error", "slow_requests"):
        for level in (None, "WARNING"):
            query = LogQuery(since=now - timedelta(hours=1), until=now, level=level,
                             trace_id=TRACE, contains='say "hi"', min_duration_ms=500.0)
            bare = LogQuery(since=now - timedelta(hours=1), until=now, level=level)
            for one in (query, bare):
                yield f"logql.py ({stream}, level {level})", logql("shop", "prod", stream, one)


QUERIES = [*queries_in_dashboards(), *queries_in_datasources(), *queries_in_docs(),
           *_code_queries()]


def _placeholder(value: str) -> bool:
    return any(mark in value for mark in ("$", "<", "…"))


def missing(query: Needs, path: ShippingPath) -> list[str]:
    """What `query` asks of `path` that `path` does not send."""
    problems = []
    for label, op, value in query.matchers:
        if label not in path.labels:
            problems.append(f"label {label!r} is not set")
            continue
        known = path.values.get(label, LEVEL_VALUES if label == "level" else None)
        if known is None or _placeholder(value) or op in ("!=", "!~"):
            continue
        if op == "=" and value not in known:
            problems.append(f"{label}={value!r} is never sent (values: {sorted(known)})")
        if op == "=~" and not any(re.fullmatch(value, v) for v in known):
            problems.append(f"{label}=~{value!r} matches nothing sent ({sorted(known)})")
    for key in sorted(query.unparsed - path.labels - path.metadata):
        problems.append(f"| {key}=... before a parser: neither a label nor structured metadata")
    return problems


def test_the_queries_are_found_where_they_are_written() -> None:
    where = {place.split(".")[0].split(" ")[0] for place, _expr in QUERIES}
    assert {"logs", "datasources", "stack", "celery", "health", "logql"} <= where
    exprs = [expr for _where, expr in QUERIES]
    assert any(needs(e).unparsed == {"trace_id"} for e in exprs), "docs/stack.md's trace query"
    assert any(("kind", "=", "access") in needs(e).matchers for e in exprs), "Slow requests"


def test_each_shipping_path_sends_the_labels_and_metadata_the_queries_use(
    paths: list[ShippingPath],
) -> None:
    ours, promtail, alloy = paths
    assert ours.labels == promtail.labels == alloy.labels == {"service", "env", "level", "kind"}
    assert ours.values == promtail.values == alloy.values == {"kind": {"app", "access"}}
    assert ours.metadata == promtail.metadata == alloy.metadata == {"trace_id", "span_id"}
    failures = [f"{where}: {expr}\n    {path.name}: {problem}"
                for where, expr in QUERIES for path in paths
                for problem in missing(needs(expr), path)]
    assert failures == [], "queries that miss lines of a shipping path:\n" + "\n".join(failures)


PATH = ShippingPath("test", frozenset({"service", "level", "kind"}),
                    {"kind": frozenset({"app", "access"})}, frozenset({"trace_id"}))


@pytest.mark.parametrize(("expr", "problems"), [
    ('{service=~".+"} | trace_id="abc"', 0),
    ('{service=~".+"} | span_id="abc"', 1),  # not metadata of this path
    ('{service=~".+"} | json | span_id="abc"', 0),  # after a parser: a field of the line
    ('{service=~".+"} | logfmt | user="a" | json', 0),
    ('{service=~".+"} |= "x" | level="error" or user_id="7" | json', 1),
    ('{job="exporter"}', 1),
    ('{service="a", kind="slow"}', 1),
    ('{service="a", kind=~"acc.*"}', 0),
    ('{service="a", level=~"fatal|panic"}', 1),
    ('{service="a", kind!="slow"}', 0),
    ('sum by (level) (count_over_time({service=~"$service"} [$__interval]))', 0),
    ('{service="a"} | line_format "{{.trace_id}}" | trace_id="x"', 0),
    ('{service="a"} | duration_ms >= 500', 1),
])
def test_the_check_reads_selectors_and_filters_as_loki_does(expr: str, problems: int) -> None:
    assert len(missing(needs(expr), PATH)) == problems, missing(needs(expr), PATH)


def test_a_selector_that_is_not_a_matcher_list_is_refused() -> None:
    with pytest.raises(ValueError, match="not a stream selector"):
        needs('{service="a" | json}')
