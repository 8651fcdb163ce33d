"""The trace id of the current request: the OpenTelemetry span's when one records the request
(exporter.http.otel), else parsed from W3C `traceparent`, else `X-Request-ID`, else a new one."""

from __future__ import annotations

import re
from contextvars import ContextVar
from random import getrandbits
from typing import Any, NamedTuple

from exporter.errors.scrub import scrub_text

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class TraceContext(NamedTuple):
    """Where one request sits in a distributed trace."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    # "traceparent", "x-request-id", "generated", or OTEL_SOURCE: the ids are those of the
    # OpenTelemetry span that records the request, and records made inside it read the current
    # span (a child span's id is theirs).
    source: str = "generated"
    # The counted HTTP request it belongs to (the middleware sets them): errors logged or
    # reported inside the request are filed under its route.
    route: str | None = None
    method: str | None = None


OTEL_SOURCE = "opentelemetry"

_current: ContextVar[TraceContext | None] = ContextVar("exporter_trace", default=None)


def current_trace() -> TraceContext | None:
    """The trace context of the request (or Celery task) being handled, or None outside one.
    Within a request an OpenTelemetry span records, the ids of the current span (FastAPI's
    endpoint or dependency span, a span of the app's own) in that trace."""
    trace = _current.get()
    if trace is not None and trace.source == OTEL_SOURCE:
        return trace_in_current_span(trace)
    return trace


def current_trace_id() -> str | None:
    """The trace id of the request being handled, or None outside a request."""
    trace = current_trace()
    return trace.trace_id if trace is not None else None


def current_span_id() -> str | None:
    """The span id of the request being handled (the current OpenTelemetry span's, when one
    records it), or None outside a request."""
    trace = current_trace()
    return trace.span_id if trace is not None else None


# Ids need to be unique, not secret: the random module is fast, and Python reseeds it in a
# forked child, so pre-forked workers do not repeat each other's ids.
# int.to_bytes().hex(), not an f-string: half the time, and far less of the interpreter's code
# (the number formatter is large), which matters for what runs once per request.
def new_trace_id() -> str:
    """A random 32-hex-digit W3C trace id."""
    return getrandbits(128).to_bytes(16, "big").hex()


def new_span_id() -> str:
    """A random 16-hex-digit W3C span id."""
    return getrandbits(64).to_bytes(8, "big").hex()


def parse_traceparent(value: str) -> tuple[str, str] | None:
    """`(trace_id, parent_id)` from a W3C `traceparent` value, or None when it is invalid."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id


_new = tuple.__new__  # NamedTuple's own __new__ is a Python function: one frame per request


def trace_from_headers(
    headers: list[tuple[bytes, bytes]] | tuple[()],
    route: str | None = None,
    method: str | None = None,
) -> TraceContext:
    """The trace context of a request from its raw ASGI headers (lower-case names), with the
    request's route template and method."""
    # A loop, not dict(headers): served by uvicorn, that dict, made while the request's
    # context held its trace, made the cyclic GC run once every ~55 requests although no
    # garbage was found (the count of tracked objects drifted up), with a full collection
    # (40-60 ms) every ~10,000: about 4 % of the time in GC. Without it: as often as bare.
    # A repeated name keeps its last value, so of several traceparent headers (which W3C
    # forbids) the last one is tried.
    traceparent = request_id = None
    for name, value in headers:
        if name == b"traceparent":
            traceparent = value
        elif name == b"x-request-id":
            request_id = value
    if traceparent is not None:
        parsed = parse_traceparent(traceparent.decode("latin-1"))
        if parsed is not None:
            return _new(TraceContext, (parsed[0], new_span_id(), parsed[1], "traceparent",
                                       route, method))
    if request_id is not None:
        text = request_id.decode("latin-1").strip()
        # One that holds a secret (`token:...`) would carry it into every log line, exemplar
        # and error event of the request, and to Loki: not taken.
        if _REQUEST_ID.fullmatch(text) and scrub_text(text) == text:
            return _new(TraceContext, (text, new_span_id(), None, "x-request-id", route, method))
    # new_trace_id() and new_span_id(), inlined: this runs once per request.
    return _new(TraceContext, (getrandbits(128).to_bytes(16, "big").hex(),
                               getrandbits(64).to_bytes(8, "big").hex(),
                               None, "generated", route, method))


# The last answer of trace_in_current_span, as (span, request's trace, answer): the records of
# one span (log lines of an endpoint) share it. One tuple, replaced whole: threads share it.
_last_in_span: tuple[Any, Any, Any] = (None, None, None)


def trace_in_current_span(trace: TraceContext) -> TraceContext:
    """`trace` (a request recorded by a span) with the ids of the span current now: a log line
    or error inside FastAPI's endpoint span carries that span's id."""
    global _last_in_span
    # Only requests recorded by an OpenTelemetry span get here, so only they import it.
    from opentelemetry.trace import get_current_span

    span = get_current_span()
    last = _last_in_span
    if last[0] is span and last[1] is trace:
        return last[2]  # type: ignore[no-any-return]
    context = span.get_span_context()
    answer = trace
    if context.is_valid and not context.is_remote:  # else e.g. a thread without the context
        span_id = context.span_id.to_bytes(8, "big").hex()
        if span_id != trace.span_id:
            answer = _new(TraceContext, (context.trace_id.to_bytes(16, "big").hex(), span_id,
                                         parent_span_of(span), trace.source, trace.route,
                                         trace.method))
    _last_in_span = (span, trace, answer)
    return answer


def parent_span_of(span: Any) -> str | None:
    """The hex id of an OpenTelemetry span's parent, when the span knows it."""
    parent = getattr(span, "parent", None)  # the SDK's spans know their parent; the API's not
    span_id = getattr(parent, "span_id", None)
    return span_id.to_bytes(8, "big").hex() if isinstance(span_id, int) and span_id else None
