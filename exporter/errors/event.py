"""`ErrorEvent`: one captured occurrence, scrubbed and fingerprinted in the caller's thread."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

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
# Set on an exception once captured, so a re-raise or a later log of it is not counted twice.
CAPTURED_MARK = "__exporter_captured__"


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """What the store keeps of one occurrence; holds no secret and no live object."""

    fingerprint: str
    type: str
    message: str
    culprit: str
    stack: list[Frame]
    timestamp: float
    route: str | None = None
    method: str | None = None
    trace_id: str | None = None
    release: str | None = None
    environment: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


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
    message = scrub_text(text)[:_MAX_MESSAGE]
    frames = stack_of(exc.__traceback__, limit=None)
    stack = frames[-_MAX_STORED_FRAMES:]
    in_app = [frame for frame in stack if frame.in_app] or stack
    culprit = f"{in_app[-1].module}:{in_app[-1].function}" if in_app else type_name
    return ErrorEvent(
        fingerprint=fingerprint(type_name, message, frames),
        type=type_name,
        message=message,
        culprit=culprit,
        stack=stack,
        timestamp=time.time() if timestamp is None else timestamp,
        route=route,
        method=method,
        trace_id=trace_id,
        release=release,
        environment=environment,
        context=_bounded_context(scrub_value(context)) if context else {},
    )


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
