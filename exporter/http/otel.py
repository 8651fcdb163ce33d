"""One trace id with OpenTelemetry: when a span records the request (FastAPI's own server span
from 0.142 on, or any OTel instrumentation's), the request's trace and span ids are that span's.

Whether to look is decided once per middleware, at its first request (`request_trace_source`):
an OpenTelemetry SDK tracer provider is installed globally, or a span is current then (an
instrumentation given its own provider, as `FastAPI(telemetry={"tracer_provider": ...})`).
Without either, the middleware keeps parsing headers alone and makes no OTel call per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exporter.http.trace import (
    OTEL_SOURCE,
    TraceContext,
    new_span_id,
    parent_span_of,
    trace_from_headers,
)

TraceOf = Callable[[Any, "str | None", "str | None"], TraceContext]

# The API's own providers: nothing records spans while the global provider is one of these.
_API_PROVIDERS = frozenset({"ProxyTracerProvider", "NoOpTracerProvider"})
_new = tuple.__new__  # NamedTuple's own __new__ is a Python function: one frame per request


# opentelemetry.trace.get_current_span, imported at the first request that needs it (an import
# statement in the function cost a look-up in the import machinery on every request).
_get_current_span: Callable[[], Any] | None = None


def _load_get_current_span() -> Callable[[], Any]:
    global _get_current_span
    from opentelemetry.trace import get_current_span

    _get_current_span = get_current_span
    return get_current_span


def sdk_provider_installed() -> bool:
    """True when the global tracer provider records spans (not the API's proxy or no-op one);
    False too when opentelemetry-api is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    provider = trace.get_tracer_provider()
    cls = type(provider)
    return not (cls.__module__.startswith("opentelemetry.trace")
                and cls.__name__ in _API_PROVIDERS)


def _span_is_current() -> bool:
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    return bool(trace.get_current_span().get_span_context().is_valid)


def request_trace_source() -> TraceOf:
    """How the middleware finds each request's trace from now on: `trace_from_span` when spans
    are recorded here (see the module's docstring), else `trace_from_headers`."""
    if sdk_provider_installed() or _span_is_current():
        return trace_from_span
    return trace_from_headers


def trace_from_span(
    headers: Any, route: str | None = None, method: str | None = None
) -> TraceContext:
    """The request's trace: the current OpenTelemetry span's ids when one is valid, else (no
    span for this request: excluded, or tracing off) as `trace_from_headers` finds it."""
    span = (_get_current_span or _load_get_current_span())()
    context = span.get_span_context()
    if not context.is_valid:
        return trace_from_headers(headers, route, method)
    trace_id = context.trace_id.to_bytes(16, "big").hex()
    span_id = context.span_id.to_bytes(8, "big").hex()
    if context.is_remote:
        # Only the caller's context is current (an instrumentation that extracted it and
        # started no span): continue its trace under a span id of our own.
        return _new(TraceContext, (trace_id, new_span_id(), span_id, "traceparent", route,
                                   method))
    return _new(TraceContext, (trace_id, span_id, parent_span_of(span), OTEL_SOURCE, route,
                               method))
