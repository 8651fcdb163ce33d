"""The sidecar's 422 reply: FastAPI's shape, safe for any input a client can send.

FastAPI's own handler echoes each bad value back as `input`; a body holding `NaN`, `Infinity`,
`1e309` or a lone surrogate (`"\\ud800"`) then makes the reply itself fail to encode, and the
client gets a 500 instead of the 422 that names the field.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from exporter.api.validation import PATTERN_MESSAGES

_MAX_ECHO = 200  # characters of a bad string value echoed back


def _printable(value: Any, depth: int = 0) -> Any:
    """`value` with what JSON cannot carry made printable: non-finite floats become their
    name, strings lose lone surrogates and are cut short, deep or large containers a summary."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8")
        return text if len(text) <= _MAX_ECHO else text[:_MAX_ECHO] + "..."
    if isinstance(value, (bytes, bytearray)):
        return _printable(bytes(value).decode("utf-8", "replace"), depth)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth >= 3:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        items = list(value.items())[:20]
        return {str(_printable(k, depth + 1)): _printable(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_printable(v, depth + 1) for v in value[:20]]
    return _printable(repr(value), depth)


def _readable(error: dict[str, Any]) -> dict[str, Any]:
    """The error, with the forms a known pattern stands for in place of the regex."""
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern in PATTERN_MESSAGES:
            error["msg"] = PATTERN_MESSAGES[pattern]
            error.pop("ctx", None)
    return error


async def invalid_input_reply(request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's `{"detail": [{"loc", "msg", "type", "input"}, ...]}`, never a 500."""
    assert isinstance(exc, RequestValidationError)
    errors = [_printable(_readable(dict(err))) for err in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})


def reply_to_invalid_input(app: FastAPI) -> None:
    """Answer every request-validation error of `app` with `invalid_input_reply`."""
    app.add_exception_handler(RequestValidationError, invalid_input_reply)
