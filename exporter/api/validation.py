"""422 replies shaped like FastAPI's own, so clients (and the OpenAPI schema) see one format."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError


def invalid(where: str, name: str, message: str, value: Any = None) -> RequestValidationError:
    """A 422 for `name` in `where` ("query", "path" or "body"), with a human message."""
    return RequestValidationError(
        [{"type": "value_error", "loc": (where, name), "msg": message, "input": value}]
    )
