"""The push body with structured metadata, as Loki's push API takes it, and how a Loki that
refuses structured metadata is recognised (its own message, from its validation code)."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest

from exporter.logs.push import PushResult, encode_push, refuses_metadata, without_metadata
from tests.loki_receiver import DISALLOWED_METADATA, check_values

HEADERS = {"content-type": "application/json", "content-encoding": "gzip"}
LABELS = (("env", "test"), ("kind", "access"), ("level", "info"), ("service", "shop"))
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def body_of(values: list[Any], labels: dict[str, Any] | None = None) -> bytes:
    stream = {"stream": labels or dict(LABELS), "values": values}
    return gzip.compress(json.dumps({"streams": [stream]}).encode())


def test_metadata_is_the_third_element_of_a_value_only_when_a_line_has_it() -> None:
    now = time.time_ns()
    body = encode_push([(LABELS, now, "a", {"trace_id": TRACE, "span_id": "00f067aa0ba902b7"}),
                        (LABELS, now + 1, "b", None), (LABELS, now + 2, "c", {})])
    (stream,) = json.loads(gzip.decompress(body))["streams"]
    assert stream["values"] == [
        [str(now), "a", {"trace_id": TRACE, "span_id": "00f067aa0ba902b7"}],
        [str(now + 1), "b"], [str(now + 2), "c"]]
    assert [meta for *_rest, meta in check_values(HEADERS, body)] == [
        {"trace_id": TRACE, "span_id": "00f067aa0ba902b7"}, None, None]


def test_without_metadata_leaves_the_lines_and_counts_what_it_took_out() -> None:
    now = time.time_ns()
    body = encode_push([(LABELS, now, "a", {"trace_id": TRACE}), (LABELS, now + 1, "b", None)])
    plain, stripped = without_metadata(body)
    assert stripped == 1
    assert check_values(HEADERS, plain) == [
        (dict(LABELS), now, "a", None), (dict(LABELS), now + 1, "b", None)]
    assert without_metadata(plain) == (plain, 0)  # nothing to take out: the same bytes
    assert without_metadata(b"not gzip") == (b"not gzip", 0)  # Loki will refuse it, as before


@pytest.mark.parametrize(("status", "detail", "refused"), [
    (400, DISALLOWED_METADATA % '{env="test", service="shop"}', True),
    (400, "2 errors like: " + DISALLOWED_METADATA % "{a=\"1\"}" + "; 1 errors like: stream "
          "'{a=\"2\"}' has timestamp too old", True),
    # Loki 2.9 named the limit differently; the rest of the message is the same.
    (400, "stream '{a=\"1\"}' includes structured metadata, but this feature is disallowed. "
          "Please see `limits_config.structured_metadata` or contact your Loki administrator "
          "to enable it.", True),
    (400, "entry for stream '{a=\"1\"}' has timestamp too new", False),
    (400, "stream '{a=\"1\"}' has structured metadata too large: '70000' bytes", False),
    (429, DISALLOWED_METADATA % "{a=\"1\"}", False),
    (500, "structured metadata disabled", False),
])
def test_a_refusal_of_structured_metadata_is_told_from_other_refusals(
    status: int, detail: str, refused: bool
) -> None:
    outcome = "reject" if status == 400 else "retry"
    assert refuses_metadata(PushResult(outcome, status, None, detail)) is refused


@pytest.mark.parametrize(("value", "error"), [
    (["1", "x", {"trace_id": {"nested": "no"}}], "bad structured metadata"),
    (["1", "x", {"trace_id": 123}], "bad structured metadata"),
    (["1", "x", {"trace_id": ""}], "bad structured metadata"),
    (["1", "x", {"trace-id": "a"}], "bad structured metadata"),
    (["1", "x", {}], "non-empty object"),
    (["1", "x", ["trace_id", "a"]], "non-empty object"),
    (["1", "x", {"trace_id": "a"}, "more"], "a value must be"),
    (["1", "x", {f"k{n}": "v" for n in range(129)}], "structured metadata entries"),
    (["1", "x", {"big": "v" * 70_000}], "structured metadata of"),
])
def test_the_receiver_refuses_metadata_loki_would_not_take(value: list[Any], error: str) -> None:
    value[0] = str(time.time_ns())
    with pytest.raises(ValueError, match=error):
        check_values(HEADERS, body_of([value]))


@pytest.mark.parametrize(("labels", "error"), [
    ({"__name__": "x"}, "bad label"),
    ({"service": ""}, "bad label"),
    ({"service": "x" * 2049}, "bad label"),
    ({"trace-id": "x"}, "bad label"),
    ({f"l{n}": "v" for n in range(16)}, "at most 15"),
])
def test_the_receiver_refuses_labels_loki_would_not_take(
    labels: dict[str, str], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        check_values(HEADERS, body_of([[str(time.time_ns()), "x"]], labels))
