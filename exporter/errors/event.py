"""`ErrorEvent`: one captured occurrence, scrubbed and fingerprinted in the caller's thread."""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from exporter.errors.fingerprint import (
    Frame,
    exception_type_name,
    fingerprint,
    stack_of,
)
from exporter.errors.scrub import scrub_text, scrub_value

_MAX_MESSAGE = 1000
_MAX_STORED_FRAMES = 50  # the innermost frames kept on a sample (the fingerprint sees them all)
_MAX_CONTEXT_BYTES = 8192
_MAX_CONTEXT_VALUE = 200
# The summary of an exception by its type, text and frames: an error that recurs (a storm of
# one bug) skips the scrubber, the message's normalisation and the hash (18 of 54 us a capture).
_SUMMARIES: dict[tuple[str, str, tuple[Frame, ...]], tuple[str, str, str]] = {}
_MAX_SUMMARIES = 1024
# Set on an exception once captured, so a re-raise or a later log of it is not counted twice.
CAPTURED_MARK = "__exporter_captured__"


class ErrorEvent(NamedTuple):
    """What the store keeps of one occurrence; holds no secret and no live object.

    A named tuple of strings, numbers and tuples (the context aside): the garbage collector
    stops tracking it at its first pass, so events waiting for the store's writer are never
    promoted to the old generation and never make the collector walk the whole heap (which a
    dataclass did: 136 ms of full collections per 3,000 raising requests)."""

    fingerprint: str
    type: str
    message: str
    culprit: str
    stack: tuple[Frame, ...]
    timestamp: float
    route: str | None = None
    method: str | None = None
    trace_id: str | None = None
    release: str | None = None
    environment: str | None = None
    context: dict[str, Any] = {}  # noqa: RUF012 - never mutated: each event gets its own


def event_from_exception(
    exc: BaseException,
    *,
    route: str | None = None,
    method: str | None = None,
    trace_id: str | None = None,
    release: str | None = None,
    environment: str | None = None,
    context: dict[str, Any] | None = None,
    timestamp: float | None = None,
) -> ErrorEvent:
    """The scrubbed, fingerprinted event for `exc` (which must have been raised)."""
    type_name = exception_type_name(exc)
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not lose the event
        text = "<unprintable>"
    stack = stack_of(exc.__traceback__, limit=None)
    key = (type_name, text, stack)
    summary = _SUMMARIES.get(key)
    if summary is None:
        summary = _summary(type_name, text, stack)
        if len(text) <= _MAX_MESSAGE:  # a long text is not kept in memory for its sake
            if len(_SUMMARIES) >= _MAX_SUMMARIES:
                _SUMMARIES.clear()
            _SUMMARIES[key] = summary
    message, fingerprint_, culprit = summary
    return ErrorEvent(
        fingerprint=fingerprint_,
        type=type_name,
        message=message,
        culprit=culprit,
        stack=stack[-_MAX_STORED_FRAMES:],
        timestamp=time.time() if timestamp is None else timestamp,
        route=route,
        method=method,
        trace_id=trace_id,
        release=release,
        environment=environment,
        context=_bounded_context(scrub_value(context)) if context else {},
    )


def _summary(type_name: str, text: str, stack: tuple[Frame, ...]) -> tuple[str, str, str]:
    """`(message, fingerprint, culprit)`: the scrubbed message, and what names the group."""
    message = scrub_text(text)[:_MAX_MESSAGE]
    in_app = [frame for frame in stack if frame.in_app] or stack
    culprit = f"{in_app[-1].module}:{in_app[-1].function}" if in_app else type_name
    return message, fingerprint(type_name, message, stack), culprit


def _bounded_context(context: dict[str, Any]) -> dict[str, Any]:
    """`context` as kept on a sample: at most about 8 KiB of JSON. Past that, long values are
    cut to 200 characters, then keys beyond the budget are left out (`_truncated` says how
    many)."""
    if _json_size(context) <= _MAX_CONTEXT_BYTES:
        return context
    kept: dict[str, Any] = {}
    size = 2
    left_out = 0
    for key, value in context.items():
        if _json_size(value) > _MAX_CONTEXT_VALUE:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            value = text[:_MAX_CONTEXT_VALUE] + "..."
        cost = _json_size({key: value})
        if size + cost > _MAX_CONTEXT_BYTES - 64:  # room for `_truncated`
            left_out += 1
            continue
        kept[key] = value
        size += cost
    if left_out:
        kept["_truncated"] = f"{left_out} more keys left out"
    return kept


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str, ensure_ascii=False))
