"""`ErrorEvent`: one captured occurrence, scrubbed and fingerprinted in the caller's thread."""

from __future__ import annotations

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
    stack = stack_of(exc.__traceback__)
    in_app = [frame for frame in stack if frame.in_app] or stack
    culprit = f"{in_app[-1].module}:{in_app[-1].function}" if in_app else type_name
    return ErrorEvent(
        fingerprint=fingerprint(type_name, message, stack),
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
        context=scrub_value(context) if context else {},
    )
