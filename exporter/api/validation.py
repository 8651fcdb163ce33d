"""422 replies shaped like FastAPI's own, so clients (and the OpenAPI schema) see one format."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from exporter.logquery import parse_since

SINCE_PATTERN = (
    r"^(\d{1,9}[smhd]|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}))$"
)
# One `since` for every route that takes it: an RFC 3339 time or a look-back.
Since = Annotated[
    str | None,
    Query(pattern=SINCE_PATTERN, description="RFC 3339 time, or a look-back: 15m, 2h, 1d"),
]


def invalid(where: str, name: str, message: str, value: Any = None) -> RequestValidationError:
    """A 422 for `name` in `where` ("query", "path" or "body"; no name: the whole of it), with a
    human message."""
    error: dict[str, Any] = {
        "type": "value_error", "loc": (where, name) if name else (where,), "msg": message}
    if value is not None:
        error["input"] = value
    return RequestValidationError([error])


def since_time(text: str, now: datetime) -> datetime:
    """The moment a `since` parameter names; a 422 naming `since` when it names none."""
    try:
        return parse_since(text, now)
    except ValueError as exc:
        raise invalid("query", "since", str(exc), text) from None
