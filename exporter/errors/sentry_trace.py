"""Sentry's trace context from ours: an event's `contexts.trace` (what Sentry's issue view links
as its trace) and its `trace_id` tag carry the request's trace id, the one of its log lines,
exemplars and `X-Trace-Id` (the OpenTelemetry span's, when one records the request)."""

from __future__ import annotations

from typing import Any

from exporter.http.trace import current_trace

_HEX = frozenset("0123456789abcdef")


def trace_context(trace_id: str | None, span_id: str | None) -> tuple[str, str] | None:
    """`(trace_id, span_id)` when they can be Sentry's trace context (32 and 16 lower-case hex
    digits, as W3C's and Sentry's ids are), else None: an id taken from X-Request-ID stays in
    the event's `trace_id` tag alone."""
    if (trace_id is None or span_id is None or len(trace_id) != 32 or len(span_id) != 16
            or not _HEX.issuperset(trace_id) or not _HEX.issuperset(span_id)):
        return None
    return trace_id, span_id


def continue_trace(scope: Any, trace: tuple[str, str]) -> None:
    """Make `trace` the scope's propagation context: the event's trace context (what Sentry's
    issue view links as its trace) and its envelope's dynamic sampling context then carry our
    trace id, the one of the `trace_id` tag, the logs, the exemplars and `X-Trace-Id`."""
    scope.set_new_propagation_context()
    propagation = scope.get_active_propagation_context()
    propagation.trace_id, propagation.span_id = trace


def adopt_current_trace(event: dict[str, Any], tags: dict[str, Any]) -> None:
    """Give an event sentry-sdk captured itself inside a request or task (the app called
    `sentry_sdk.capture_*`) our trace: its `trace_id` tag and its trace context."""
    trace = current_trace()
    if trace is None:
        return
    if "trace_id" not in tags:
        tags["trace_id"] = trace.trace_id
    ids = trace_context(trace.trace_id, trace.span_id)
    contexts = event.setdefault("contexts", {})
    current = contexts.get("trace") or {}
    # A transaction's own span (EXPORTER_SENTRY_TRACES_SAMPLE_RATE > 0) keeps its trace: the
    # event stays linked to the transaction it happened in.
    if ids is not None and "op" not in current:
        from sentry_sdk.tracing_utils import PropagationContext

        ours = PropagationContext(ids[0], ids[1], trace.parent_span_id)
        # The envelope's `trace` header, made afresh from the client (a process-long isolation
        # scope keeps the one it made first, for its own trace).
        contexts["trace"] = {**current, "trace_id": ids[0], "span_id": ids[1],
                             "parent_span_id": trace.parent_span_id,
                             "dynamic_sampling_context": ours.dynamic_sampling_context}
