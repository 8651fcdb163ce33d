"""What the log ingestion API takes: an entry, and how a batch's refusals are told."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exporter.config import Settings

LEVELS = ("debug", "info", "warning", "error", "critical")
_ALIASES = {"warn": "warning", "fatal": "critical", "err": "error"}
# Fields the exporter sets itself; free metadata cannot overwrite them.
_RESERVED = frozenset({"ts", "level", "logger", "env", "service", "message", "trace_id", "span_id"})


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


def entry_fields(entry: LogEntry, settings: Settings) -> dict[str, Any]:
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


def first_error(exc: ValidationError) -> str:
    err = exc.errors(include_input=False)[0]
    return f"{_where(err)}: {err['msg']}"


def refused_batch(where: tuple[str, ...], errors: list[BatchError]) -> RequestValidationError:
    """The 422 of a batch refused whole: each refused entry, by its index (`reason` is
    `field: message`)."""
    found = []
    for error in errors:
        field, _, message = error.reason.partition(": ")
        found.append({"type": "value_error", "msg": message or error.reason,
                      "loc": (*where, error.index, *field.split("."))})
    return RequestValidationError(found)


def invalid_entry(exc: ValidationError) -> RequestValidationError:
    # FastAPI's shape, without `input`: it may hold what cannot be encoded (a lone surrogate).
    return RequestValidationError([
        {"type": err["type"], "loc": ("body", *err["loc"]), "msg": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ])
