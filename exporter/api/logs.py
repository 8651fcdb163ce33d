"""The log ingestion API, for services that cannot talk to Loki: /api/v1/logs/..."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exporter.api.auth import bearer_token_guard
from exporter.api.validation import invalid
from exporter.config import Settings
from exporter.logs.setup import LogSinks, active_sinks
from exporter.logs.shipper_health import shipper_health

LEVELS = ("debug", "info", "warning", "error", "critical")
_ALIASES = {"warn": "warning", "fatal": "critical", "err": "error"}
# Fields the exporter sets itself; free metadata cannot overwrite them.
_RESERVED = frozenset({"ts", "level", "logger", "env", "service", "message", "trace_id", "span_id"})
_MAX_AGE = 7 * 86400  # Loki's default reject_old_samples_max_age
_MAX_AHEAD = 600
_TOO_LARGE = 413
_ERROR: dict[str, Any] = {"description": "the request cannot be taken; `detail` says why"}
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
    timestamp: datetime | None = Field(None, description="when it happened (default: now)")
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


def _created(entry: LogEntry, now: float) -> float:
    if entry.timestamp is None:
        return now
    when = entry.timestamp.timestamp()
    if when < now - _MAX_AGE or when > now + _MAX_AHEAD:
        raise ValueError("timestamp: must be within the last 7 days and not in the future")
    return when


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


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "entry"
    return f"{where}: {err['msg']}"


def logs_router(
    settings: Settings, sinks: Callable[[], LogSinks | None] = active_sinks
) -> APIRouter:
    """The /api/v1/logs routes; entries go to the sinks `sinks()` returns at request time."""
    router = APIRouter(
        prefix="/api/v1/logs", tags=["logs"], dependencies=[Depends(bearer_token_guard(settings))]
    )
    max_entries = settings.log_batch_max_entries
    max_message = settings.log_entry_max_bytes

    def current() -> LogSinks:
        found = sinks()
        if found is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "logging is not set up: call exporter.setup_logging(settings) first",
            )
        return found

    def accept(target: LogSinks, entry: LogEntry, now: float) -> None:
        if len(entry.message.encode("utf-8")) > max_message:
            raise OverflowError(f"message: longer than {max_message} bytes")
        created = _created(entry, now)
        target.write_entry(created, entry.level, _fields(entry, settings))

    @router.post(
        "/write", status_code=status.HTTP_202_ACCEPTED,
        responses={400: _ERROR, 413: _ERROR, 503: _ERROR},
    )
    def write(entry: LogEntry) -> dict[str, str]:
        target = current()
        try:
            accept(target, entry, time.time())
        except OverflowError as exc:
            raise HTTPException(_TOO_LARGE, str(exc)) from None
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise invalid("body", field, message or str(exc)) from None
        return {"status": "accepted"}

    @router.post(
        "/batch",
        responses={413: _ERROR, 422: _INVALID, 503: _ERROR},
        # Each entry is validated on its own (a bad one is reported by index, the others are
        # taken), so the schema says "a list", and LogEntry describes what each should be.
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"oneOf": [
                {"type": "object", "required": ["entries"],
                 "properties": {"entries": {"type": "array", "items": {}}}},
                {"type": "array", "items": {}},
            ]},
        }}}},
    )
    async def batch(request: Request) -> BatchReply:
        target = current()
        limit = max_entries * (max_message + 4096)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise HTTPException(
                _TOO_LARGE, f"body larger than {limit} bytes"
            )
        raw = await request.body()
        if len(raw) > limit:
            raise HTTPException(
                _TOO_LARGE, f"body larger than {limit} bytes"
            )
        try:
            doc = json.loads(raw)
        except ValueError:
            raise invalid("body", "entries", "body is not valid JSON") from None
        entries = doc.get("entries") if isinstance(doc, dict) else doc
        if not isinstance(entries, list):
            raise invalid(
                "body", "entries", 'body must be {"entries": [...]} or a JSON array of entries'
            )
        if len(entries) > max_entries:
            raise HTTPException(
                _TOO_LARGE,
                f"entries: {len(entries)} entries, at most {max_entries} per batch",
            )
        errors: list[BatchError] = []
        now = time.time()
        for index, item in enumerate(entries):
            try:
                accept(target, LogEntry.model_validate(item), now)
            except ValidationError as exc:
                errors.append(BatchError(index=index, reason=_first_error(exc)))
            except (ValueError, OverflowError) as exc:
                errors.append(BatchError(index=index, reason=str(exc)))
        total = len(entries)
        return BatchReply(total=total, success=total - len(errors), error=len(errors),
                          errors=errors)

    @router.get("/health")
    def health() -> dict[str, Any]:
        return shipper_health(current().shipper)

    return router
