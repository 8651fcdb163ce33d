"""One captured occurrence, scrubbed and fingerprinted in the caller's thread: an `ErrorEvent`,
or the plain tuple the store's writer queue holds (`occurrence`)."""

from __future__ import annotations

import hashlib
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
# (message, fingerprint, culprit, kept stack, its digest, its JSON): see `_described`.
_Summary = tuple[str, str, str, tuple[Frame, ...], str, str]
# The summary of an exception by its type, text and frames: an error that recurs (a storm of
# one bug) skips the scrubber, the message's normalisation and the hash (18 of 54 us a capture).
_SUMMARIES: dict[tuple[str, str, tuple[Frame, ...]], _Summary] = {}
_MAX_SUMMARIES = 1024
# The kept stacks met so far, each with its digest and JSON: one tuple and one text per stack,
# however many occurrences (and summaries, when messages vary) share it.
_STACKS: dict[tuple[Frame, ...], tuple[tuple[Frame, ...], str, str]] = {}
_MAX_STACKS = 1024
# Set on an exception once captured, so a re-raise or a later log of it is not counted twice.
CAPTURED_MARK = "__exporter_captured__"
# One occurrence as the store's writer queue holds it, in this order: fingerprint, type,
# message, culprit, stack digest, stack JSON, timestamp, route, method, trace id, release,
# environment, context as JSON (None without one). A plain tuple of strings and numbers: the
# garbage collector stops tracking it at its first pass, so occurrences waiting for the writer
# are never promoted to the old generation, whose collections walk the whole heap (about 40 ms
# in a FastAPI app). A named tuple is never untracked, nor a tuple holding one, or a dict.
Occurrence = tuple[str, str, str, str, str, str, float, str | None, str | None, str | None,
                   str | None, str | None, str | None]


class ErrorEvent(NamedTuple):
    """What the store keeps of one occurrence; holds no secret and no live object. `stack` is
    the innermost frames, outermost first; `occurrence()` is the same as the writer queues it."""

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

    def occurrence(self) -> Occurrence:
        """This event as the store's writer queue holds it (see `Occurrence`)."""
        _, digest, text = _kept(self.stack)
        return (self.fingerprint, self.type, self.message, self.culprit, digest, text,
                self.timestamp, self.route, self.method, self.trace_id, self.release,
                self.environment,
                json.dumps(self.context, default=str, ensure_ascii=False) if self.context
                else None)


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
    type_name, (message, fingerprint_, culprit, stack, _, _) = _described(exc)
    return ErrorEvent(
        fingerprint=fingerprint_,
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


def occurrence(
    exc: BaseException,
    *,
    route: str | None = None,
    method: str | None = None,
    trace_id: str | None = None,
    release: str | None = None,
    environment: str | None = None,
    context: dict[str, Any] | None = None,
) -> Occurrence:
    """`event_from_exception(exc, ...).occurrence()`, without the event: what a capture queues."""
    type_name, (message, fingerprint_, culprit, _, digest, text) = _described(exc)
    return (fingerprint_, type_name, message, culprit, digest, text, time.time(), route, method,
            trace_id, release, environment, _context_text(context) if context else None)


def _described(exc: BaseException) -> tuple[str, _Summary]:
    """`exc`'s type name and summary: its scrubbed message, fingerprint, culprit and kept
    stack (the innermost frames, one tuple per distinct stack) with that stack's digest and
    JSON."""
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
    return type_name, summary


def _kept(stack: tuple[Frame, ...]) -> tuple[tuple[Frame, ...], str, str]:
    """`stack`'s innermost frames as kept on a sample: one tuple per distinct stack, its
    digest (32 hex digits: how samples name it) and its JSON."""
    kept = stack[-_MAX_STORED_FRAMES:]
    known = _STACKS.get(kept)
    if known is None:
        text = storable(json.dumps([frame.as_dict() for frame in kept], ensure_ascii=False))
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
        if len(_STACKS) >= _MAX_STACKS:
            _STACKS.clear()
        known = _STACKS[kept] = (kept, digest, text)
    return known


def storable(text: str) -> str:
    """`text` as SQLite can store it: a lone surrogate (a file name from os.fsdecode, say)
    becomes `?`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _summary(type_name: str, text: str, stack: tuple[Frame, ...]) -> _Summary:
    """The scrubbed message, what names the group, and the kept stack (see `_described`)."""
    message = scrub_text(text)[:_MAX_MESSAGE]
    in_app = [frame for frame in stack if frame.in_app] or stack
    culprit = f"{in_app[-1].module}:{in_app[-1].function}" if in_app else type_name
    return (message, fingerprint(type_name, message, stack), culprit, *_kept(stack))


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


def _context_text(context: dict[str, Any]) -> str:
    """`context` scrubbed and bounded as `_bounded_context` keeps it, as JSON text."""
    scrubbed = scrub_value(context)
    text = json.dumps(scrubbed, default=str, ensure_ascii=False)
    if len(text) > _MAX_CONTEXT_BYTES:
        text = json.dumps(_bounded_context(scrubbed), default=str, ensure_ascii=False)
    return storable(text)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str, ensure_ascii=False))
