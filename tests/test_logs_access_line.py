"""The access line written out directly is byte for byte what `render_fields` makes of it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from exporter.logs.access_line import FIELDS, LOGGER, AccessLine, plain
from exporter.logs.formatter import JsonFormatter

CASES = [
    ("GET", "/items/{item_id}", "/items/7", 200, 1.234, "127.0.0.1", "a" * 32, "b" * 16),
    ("OTHER", "<unmatched>", '/q"uo\\te/\n\t\x01', 404, 0.001, None, "c" * 32, "d" * 16),
    ("POST", "/café/{name}", "/café/ünïcødé ✓", 500, 12345.678, "::1", "x-req.1:2", "e" * 16),
    ("PUT", "/r", "/r", 201, 0.0, "10.0.0.1", "token:s3cretvalue1", "f" * 16),
    ("GET", "/r", "/r", 302, 1e-05, "Bearer abcdefgh12345", "a" * 32, "b" * 16),
]
SERVICE, ENV = "shop \"eu\"", "prod/ü"


def _fields(case: tuple[Any, ...]) -> dict[str, Any]:
    method, route, path, status, duration_ms, client, trace_id, span_id = case
    return dict(zip(FIELDS, (f"{method} {path} {status}", SERVICE, ENV, trace_id, span_id,
                             method, route, path, status, duration_ms, client), strict=True))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("level", ["info", "warning", "error"])
def test_the_direct_line_is_the_rendered_line(case: tuple[Any, ...], level: str) -> None:
    formatter = JsonFormatter(SERVICE, ENV)
    access = AccessLine(formatter)
    assert access.fits and plain(*case[3:])
    created = time.time()
    expected = formatter.render_fields(created, level, LOGGER, _fields(case),
                                       frozenset({"message", "path", "method", "route",
                                                  "status", "duration_ms", "service", "env"}))
    # What the caller scrubs: the client and the trace id (from the request), the path.
    scrub = formatter.redactor.text
    client = None if case[5] is None else scrub(case[5])
    assert access.line(created, level, *case[:5], client, scrub(case[6]), case[7]) == expected
    doc = json.loads(expected)
    assert "s3cretvalue1" not in expected and "abcdefgh12345" not in expected
    assert doc["trace_id"] == case[6] or "[redacted]" in doc["trace_id"]


def test_a_configured_secret_key_sends_the_line_to_render_fields() -> None:
    assert not AccessLine(JsonFormatter(redact_keys=["client"])).fits
    assert AccessLine(JsonFormatter(redact_keys=["customer_ref"])).fits


def test_values_of_other_types_are_not_plain() -> None:
    from http import HTTPStatus

    assert not plain(HTTPStatus.OK, 1.0, None, "a", "b")
    assert not plain(200, 1, None, "a", "b")
    assert not plain(200, 1.0, ("127.0.0.1",), "a", "b")
    assert plain(200, 1.0, None, "a", "b")
