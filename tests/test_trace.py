"""Trace ids: W3C traceparent first, then X-Request-ID, else a new one."""

from __future__ import annotations

import re

import pytest

from exporter.http.trace import parse_traceparent, trace_from_headers

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEX32 = re.compile(r"[0-9a-f]{32}")


def test_valid_traceparent_gives_its_trace_id_and_parent() -> None:
    assert parse_traceparent(VALID) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_future_version_may_carry_more_fields() -> None:
    value = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
    assert parse_traceparent(value) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  # v00 with extra field
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
    ],
)
def test_malformed_traceparent_is_rejected(value: str) -> None:
    assert parse_traceparent(value) is None


def test_headers_prefer_traceparent() -> None:
    ctx = trace_from_headers([(b"x-request-id", b"req-1"), (b"traceparent", VALID.encode())])
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert ctx.parent_span_id == "00f067aa0ba902b7"
    assert ctx.source == "traceparent"
    assert re.fullmatch(r"[0-9a-f]{16}", ctx.span_id)
    assert ctx.span_id != ctx.parent_span_id


def test_malformed_traceparent_falls_back_to_request_id() -> None:
    ctx = trace_from_headers([(b"traceparent", b"00-zz-zz-01"), (b"x-request-id", b"abc-123")])
    assert ctx.trace_id == "abc-123"
    assert ctx.source == "x-request-id"


def test_unsafe_request_id_is_not_trusted() -> None:
    ctx = trace_from_headers([(b"x-request-id", b"a b\n<script>")])
    assert ctx.source == "generated"
    assert HEX32.fullmatch(ctx.trace_id)


@pytest.mark.parametrize("request_id", [b"token:s3cretvalue1", b"password=hunter2",
                                        b"AKIAIOSFODNN7EXAMPLE"])
def test_a_request_id_holding_a_secret_is_not_taken(request_id: bytes) -> None:
    # It would be in every log line, exemplar and error event of the request (and in Loki).
    ctx = trace_from_headers([(b"x-request-id", request_id)])
    assert ctx.source == "generated"
    assert HEX32.fullmatch(ctx.trace_id)
    assert trace_from_headers([(b"x-request-id", b"order-42.a:b")]).trace_id == "order-42.a:b"


def test_missing_headers_generate_distinct_ids() -> None:
    ids = {trace_from_headers([]).trace_id for _ in range(1000)}
    assert len(ids) == 1000
    assert all(HEX32.fullmatch(i) for i in ids)
