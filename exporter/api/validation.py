"""Error replies and how the OpenAPI schema describes them: 422s shaped like FastAPI's own, so
clients see one format, and the bearer token of the protected routes (so /docs has Authorize).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPBearer
from pydantic import BaseModel, StringConstraints

from exporter.api.auth import bearer_token_guard
from exporter.config import Settings
from exporter.logs.since import (
    LOOKBACK_FORMS,
    LOOKBACK_PATTERN,
    SINCE_FORMS,
    SINCE_PATTERN,
    parse_lookback,
    parse_since,
)


class ErrorReply(BaseModel):
    """Why a request was refused."""

    detail: str


# Declares the scheme only: bearer_token_guard does the check (constant-time, with a message).
_BEARER = HTTPBearer(
    auto_error=False, scheme_name="bearerAuth",
    description="EXPORTER_API_TOKEN: send `Authorization: Bearer <token>`",
)


def protected(settings: Settings) -> dict[str, Any]:
    """`dependencies` and `responses` for a router behind `EXPORTER_API_TOKEN`: the check, and
    when a token is set, the bearer scheme and the 401 in the OpenAPI schema."""
    if settings.api_token is None:
        return {"dependencies": [Depends(bearer_token_guard(settings))], "responses": {}}
    return {
        "dependencies": [Depends(bearer_token_guard(settings)), Security(_BEARER)],
        "responses": {401: {"model": ErrorReply, "description": "missing or wrong bearer token"}},
    }


# One `since` for every route that takes it, parsed by `since_time`. Its pattern is in the
# schema and FastAPI holds a request to it; every text that matches is one the parser reads.
Since = Annotated[
    Annotated[str, StringConstraints(pattern=SINCE_PATTERN)] | None,
    Query(min_length=1, max_length=64, description=f"from when: {SINCE_FORMS}"),
]
# What a 422 says of a text that does not match these patterns (not the regex itself).
PATTERN_MESSAGES = {SINCE_PATTERN: f"expected {SINCE_FORMS}",
                    LOOKBACK_PATTERN: f"expected {LOOKBACK_FORMS}"}


def lookback_query(description: str) -> Any:
    """A look-back query parameter (`window`), parsed by `window_seconds`."""
    return Query(min_length=1, max_length=64, pattern=LOOKBACK_PATTERN,
                 description=f"{description}: {LOOKBACK_FORMS}")


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


def window_seconds(text: str, name: str = "window") -> float:
    """The seconds a look-back parameter (`window`) names; a readable 422 naming it otherwise."""
    seconds = parse_lookback(text)
    if seconds is None:
        raise invalid("query", name, f"expected {LOOKBACK_FORMS}", text)
    return seconds
