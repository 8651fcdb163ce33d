"""The log ingestion API, for services that cannot talk to Loki: /api/v1/logs/..."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from anyio import from_thread
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from exporter.api.batch_body import BATCH_KEYS, BatchBody, BatchBodyError
from exporter.api.bounded import TOO_LARGE, declared_length, too_large
from exporter.api.log_entries import (
    BatchError,
    BatchReply,
    LogEntry,
    entry_fields,
    first_error,
    invalid_entry,
    refused_batch,
)
from exporter.api.validation import ErrorReply, invalid, protected
from exporter.config import Settings, env_name
from exporter.logs.entry_time import TimestampRefused, entry_time
from exporter.logs.shipper_health import shipper_health
from exporter.logs.sinks import LogSinks, active_sinks

WRITE_TIMEOUT_SECONDS = 10.0  # what a request waits for the log files to confirm its lines
METADATA_BYTES = 16 * 1024  # what an entry's line may hold beyond its message
RETRY_AFTER_SECONDS = 1  # what a 429 asks a client to wait while the log pipeline catches up
_ERROR: dict[str, Any] = {
    "model": ErrorReply, "description": "the request cannot be taken; `detail` says why"}
_INVALID: dict[str, Any] = {  # a timestamp's bounds move with the clock: no schema keyword can
    "description": "an entry is not valid, or its `timestamp` is out of EXPORTER_LOG_ENTRY_MAX_AGE"
    "_SECONDS/_SKEW_SECONDS (nothing written); `loc` names the field (and entry's index)",
    "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise invalid("body", "", "body is nested too deeply") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise invalid("body", "", f"body is not valid JSON ({type(exc).__name__})") from None


def _left() -> HTTPException:
    """A client left before its body ended: nothing is written, no one reads this answer
    (Starlette's ClientDisconnect unhandled was a 500 and an error group of the sidecar's)."""
    return HTTPException(400, "the client left before the body ended")



def _retry_later(code: int, why: str) -> HTTPException:
    return HTTPException(code, f"{why}; retry in {RETRY_AFTER_SECONDS} s",
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _read_body(request: Request, limit: int, setting: str) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise too_large(limit, setting)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit, setting)
            chunks.append(chunk)
    except ClientDisconnect:
        raise _left() from None
    return b"".join(chunks)


def logs_router(
    settings: Settings, sinks: Callable[[], LogSinks | None] = active_sinks
) -> APIRouter:
    """The /api/v1/logs routes; entries go to the sinks `sinks()` returns at request time.

    Both routes read the body themselves, after the token check and up to a limit, and do the
    parsing, validation and redaction in a worker thread, off the event loop.
    """
    router = APIRouter(prefix="/api/v1/logs", tags=["logs"], **protected(settings))
    max_entries = settings.log_batch_max_entries
    max_message = settings.log_entry_max_bytes
    max_line = max_message + METADATA_BYTES
    # JSON escapes (\uXXXX) may take six bytes for one character of a message.
    write_limit = 4 * max_line
    batch_limit = max_entries * max_line
    max_reading = settings.log_batch_concurrency
    reading = 0  # batches being read now (on the event loop: no lock)
    line_setting = f"({env_name('log_entry_max_bytes')} + {METADATA_BYTES})"

    def current() -> LogSinks:
        found = sinks()
        if found is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "logging is not set up: call exporter.setup_logging(settings) first",
            )
        return found

    def ready(target: LogSinks) -> None:
        """Refuse the request (429, before its body is read) while the pipeline is behind."""
        behind = target.backlog()
        if behind is not None:
            raise _retry_later(status.HTTP_429_TOO_MANY_REQUESTS,
                               f"the log pipeline is behind ({behind}): nothing was written")

    def render(target: LogSinks, item: Any, now: float) -> tuple[str, str]:
        """Validate and render one entry: its (level, line); ValidationError, ValueError
        (TimestampRefused) or OverflowError."""
        try:
            entry = LogEntry.model_validate(item)
        except RecursionError:
            raise ValueError("entry: nested too deeply") from None
        if len(entry.message.encode("utf-8", "replace")) > max_message:
            raise OverflowError(f"message: longer than {max_message} bytes")
        created = entry_time(entry.timestamp, now, settings.log_entry_max_age_seconds,
                             settings.log_entry_max_skew_seconds)
        line = target.render_entry(created, entry.level, entry_fields(entry, settings))
        if len(line.encode("utf-8", "replace")) > max_line:
            raise OverflowError(
                f"entry: its line is longer than {max_line} bytes (the message may take "
                f"{max_message}, everything else {METADATA_BYTES})"
            )
        return entry.level, line

    def write_durably(target: LogSinks, lines: list[tuple[str, str]]) -> None:
        """Write the lines and wait until the files have them; 503 when they may not."""
        problem = target.write_lines(lines, WRITE_TIMEOUT_SECONDS)
        if problem is not None:
            raise _retry_later(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"{problem}: some entries may be written (send them with their timestamps, so "
                "copies are identical)")

    def write_one(target: LogSinks, raw: bytes) -> None:
        doc = _parse(raw)
        if not isinstance(doc, dict):
            raise invalid("body", "", "body must be one JSON object (an entry)")
        try:
            line = render(target, doc, time.time())
        except ValidationError as exc:
            raise invalid_entry(exc) from None
        except OverflowError as exc:
            raise HTTPException(TOO_LARGE, str(exc)) from None
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise invalid("body", field, message or str(exc)) from None
        write_durably(target, [line])

    def write_many(target: LogSinks, chunks: Callable[[], bytes | None]) -> BatchReply:
        """Read the body from `chunks` entry by entry (batch_body.py: only the lines are kept,
        not the body nor its objects), validate and render each, then write them."""
        body = BatchBody(chunks)
        errors: list[BatchError] = []
        lines: list[tuple[str, str]] = []
        refused_time = False
        now = time.time()
        total = 0
        try:
            for index, item in enumerate(body):
                if index == max_entries:
                    raise HTTPException(
                        TOO_LARGE, f"entries: more than {max_entries}, at most {max_entries} "
                        f"per batch ({env_name('log_batch_max_entries')})")
                total += 1
                try:
                    lines.append(render(target, item, now))
                except ValidationError as exc:
                    errors.append(BatchError(index=index, reason=first_error(exc)))
                except (ValueError, OverflowError) as exc:
                    refused_time = refused_time or isinstance(exc, TimestampRefused)
                    errors.append(BatchError(index=index, reason=str(exc)))
        except BatchBodyError as exc:
            raise invalid("body", exc.field, str(exc)) from None
        if refused_time:
            # A timestamp Loki would refuse is most often a client's clock, wrong for the whole
            # batch: nothing is written, and the 422 names every entry refused.
            raise refused_batch(("body", body.key) if body.in_object else ("body",), errors)
        if lines:
            write_durably(target, lines)
        return BatchReply(total=total, success=total - len(errors), error=len(errors),
                          errors=errors)

    @router.post(
        "/write", status_code=status.HTTP_202_ACCEPTED,
        responses={413: _ERROR, 422: _INVALID, 429: _ERROR, 503: _ERROR},
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": LogEntry.model_json_schema(),
        }}}},
    )
    async def write(request: Request) -> dict[str, str]:
        target = current()
        ready(target)
        raw = await _read_body(request, write_limit, f"4 x {line_setting}")
        await run_in_threadpool(write_one, target, raw)
        return {"status": "accepted"}

    @router.post(
        "/batch",
        responses={413: _ERROR, 422: _INVALID, 429: _ERROR, 503: _ERROR},
        # Each entry is validated on its own (a bad one is reported by index, the others are
        # taken), so the schema says "a list", and LogEntry describes what each should be.
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"oneOf": [
                # One of the two keys: a body with both is refused (422).
                *({"type": "object", "required": [key],
                   "properties": {key: {"type": "array", "items": {}}},
                   "not": {"required": [other]}}
                  for key, other in zip(BATCH_KEYS, reversed(BATCH_KEYS), strict=True)),
                {"type": "array", "items": {}},
            ]},
        }}}},
    )
    async def batch(request: Request) -> BatchReply:
        nonlocal reading
        target = current()
        ready(target)
        if reading >= max_reading:  # each batch read holds up to its lines: bound them
            raise _retry_later(status.HTTP_429_TOO_MANY_REQUESTS, (
                f"{reading} batches are being read ({env_name('log_batch_concurrency')}): "
                "nothing was written"))
        setting = f"{env_name('log_batch_max_entries')} x {line_setting}"
        declared = declared_length(request)
        if declared is not None and declared > batch_limit:
            raise too_large(batch_limit, setting)
        stream = request.stream().__aiter__()
        size = 0

        async def next_chunk() -> bytes | None:
            nonlocal size
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                return None
            except ClientDisconnect:
                raise _left() from None
            size += len(chunk)
            if size > batch_limit:
                raise too_large(batch_limit, setting)
            return chunk

        reading += 1
        try:
            return await run_in_threadpool(
                write_many, target, lambda: from_thread.run(next_chunk))
        finally:
            reading -= 1

    @router.get("/health")
    def health() -> dict[str, Any]:
        return shipper_health(current().shipper)

    return router
