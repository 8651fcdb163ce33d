"""The log ingestion API, for services that cannot talk to Loki: /api/v1/logs/..."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from exporter.api.validation import ErrorReply, invalid, protected
from exporter.config import Settings
from exporter.logs.entry_time import TimestampRefused, entry_time
from exporter.logs.shipper_health import shipper_health
from exporter.logs.sinks import LogSinks, active_sinks

LEVELS = ("debug", "info", "warning", "error", "critical")
_ALIASES = {"warn": "warning", "fatal": "critical", "err": "error"}
# Fields the exporter sets itself; free metadata cannot overwrite them.
_RESERVED = frozenset({"ts", "level", "logger", "env", "service", "message", "trace_id", "span_id"})
_TOO_LARGE = 413
WRITE_TIMEOUT_SECONDS = 10.0  # what a request waits for the log files to confirm its lines
METADATA_BYTES = 16 * 1024  # what an entry's line may hold beyond its message
RETRY_AFTER_SECONDS = 1  # what a 429 asks a client to wait while the log pipeline catches up
_ERROR: dict[str, Any] = {
    "model": ErrorReply, "description": "the request cannot be taken; `detail` says why"}
_INVALID: dict[str, Any] = {
    "description": "Validation Error",
    "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


class LogEntry(BaseModel):
    """One log entry; any other field (adv_id, user_id...) is kept as metadata in the line."""

    model_config = ConfigDict(extra="allow")

    message: str = Field(min_length=1)
    service_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    trace_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    span_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    timestamp: datetime | None = Field(None, description="when it happened (default: now; no "
        "zone: UTC), kept as it is, within EXPORTER_LOG_ENTRY_MAX_AGE/_SKEW_SECONDS (else 422)")
    metadata: dict[str, Any] | None = None

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return _ALIASES.get(value, value)
        return value


class BatchError(BaseModel):
    """Why one entry of a batch was refused."""

    index: int
    reason: str


class BatchReply(BaseModel):
    """How many entries of a batch were taken."""

    total: int
    success: int
    error: int
    errors: list[BatchError]


def _fields(entry: LogEntry, settings: Settings) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "message": entry.message,
        "service": entry.service_name or settings.service_name,
        "trace_id": entry.trace_id,
    }
    if entry.span_id is not None:
        fields["span_id"] = entry.span_id
    for extra in (entry.metadata, entry.model_extra):
        for key, value in (extra or {}).items():
            if key not in _RESERVED:
                fields[key] = value
    return fields


def _where(err: Any) -> str:
    return ".".join(str(part) for part in err["loc"]) or "entry"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_input=False)[0]
    return f"{_where(err)}: {err['msg']}"


def _refused_batch(where: tuple[str, ...], errors: list[BatchError]) -> RequestValidationError:
    """The 422 of a batch refused whole: each refused entry, by its index (`reason` is
    `field: message`)."""
    found = []
    for error in errors:
        field, _, message = error.reason.partition(": ")
        found.append({"type": "value_error", "msg": message or error.reason,
                      "loc": (*where, error.index, *field.split("."))})
    return RequestValidationError(found)


def _invalid_entry(exc: ValidationError) -> RequestValidationError:
    # FastAPI's shape, without `input`: it may hold what cannot be encoded (a lone surrogate).
    return RequestValidationError([
        {"type": err["type"], "loc": ("body", *err["loc"]), "msg": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ])


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise invalid("body", "", "body is nested too deeply") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise invalid("body", "", f"body is not valid JSON ({type(exc).__name__})") from None


# The batch's entries: `{"entries": [...]}`, `{"log_entries": [...]}` (the body the seed
# project's client sends) or a bare array.
_BATCH_KEYS = ("entries", "log_entries")
_BATCH_SHAPES = 'body must be {"entries": [...]}, {"log_entries": [...]} or a JSON array of entries'


def _entries_of(doc: Any) -> tuple[str, Any]:
    """`(key, entries)` of a batch body; entries is None when the body has none or both keys."""
    if not isinstance(doc, dict):
        return "entries", doc
    present = [key for key in _BATCH_KEYS if key in doc]
    if len(present) != 1:
        return "entries", None
    return present[0], doc[present[0]]


def _retry_later(code: int, why: str) -> HTTPException:
    return HTTPException(code, f"{why}; retry in {RETRY_AFTER_SECONDS} s",
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = HTTPException(_TOO_LARGE, f"body larger than {limit} bytes")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
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
        line = target.render_entry(created, entry.level, _fields(entry, settings))
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
            raise _invalid_entry(exc) from None
        except OverflowError as exc:
            raise HTTPException(_TOO_LARGE, str(exc)) from None
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise invalid("body", field, message or str(exc)) from None
        write_durably(target, [line])

    def write_many(target: LogSinks, raw: bytes) -> BatchReply:
        doc = _parse(raw)
        key, entries = _entries_of(doc)
        if not isinstance(entries, list):
            raise invalid("body", key, _BATCH_SHAPES)
        if len(entries) > max_entries:
            raise HTTPException(
                _TOO_LARGE,
                f"entries: {len(entries)} entries, at most {max_entries} per batch",
            )
        errors: list[BatchError] = []
        lines: list[tuple[str, str]] = []
        refused_time = False
        now = time.time()
        for index, item in enumerate(entries):
            try:
                lines.append(render(target, item, now))
            except ValidationError as exc:
                errors.append(BatchError(index=index, reason=_first_error(exc)))
            except (ValueError, OverflowError) as exc:
                refused_time = refused_time or isinstance(exc, TimestampRefused)
                errors.append(BatchError(index=index, reason=str(exc)))
        if refused_time:
            # A timestamp Loki would refuse is most often a client's clock, wrong for the whole
            # batch: nothing is written, and the 422 names every entry refused.
            raise _refused_batch(("body", key) if isinstance(doc, dict) else ("body",), errors)
        if lines:
            write_durably(target, lines)
        total = len(entries)
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
        raw = await _read_body(request, write_limit)
        await run_in_threadpool(write_one, target, raw)
        return {"status": "accepted"}

    @router.post(
        "/batch",
        responses={413: _ERROR, 422: _INVALID, 429: _ERROR, 503: _ERROR},
        # Each entry is validated on its own (a bad one is reported by index, the others are
        # taken), so the schema says "a list", and LogEntry describes what each should be.
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"oneOf": [
                *({"type": "object", "required": [key],
                   "properties": {key: {"type": "array", "items": {}}}} for key in _BATCH_KEYS),
                {"type": "array", "items": {}},
            ]},
        }}}},
    )
    async def batch(request: Request) -> BatchReply:
        target = current()
        ready(target)
        raw = await _read_body(request, batch_limit)
        return await run_in_threadpool(write_many, target, raw)

    @router.get("/health")
    def health() -> dict[str, Any]:
        return shipper_health(current().shipper)

    return router
