"""Search Loki's `query_range` for a `LogQuery`: the LogQL expression that means what the file
search means, and the records Loki answers with, newest first."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import httpx

from exporter.logs.formatter import as_in_line
from exporter.logs.query import LEVELS, LogQuery, constant_as_null, level_rank


class LogSourceError(RuntimeError):
    """The log source (Loki) could not be read; the message is safe to show."""


def _quote(text: str) -> str:
    return json.dumps(text)  # a LogQL string literal is a JSON-style double-quoted string


def logql(service: str, environment: str, stream: str, query: LogQuery) -> str:
    """The LogQL expression for `query` on the service's logs.

    It means what the file search means: `level` selects the stream label (which every shipper
    sets from the line's JSON `level`), `trace_id` is the line's `trace_id` exactly and
    `contains` is text in its `message` (case-sensitive). Line filters (`|=`) go first, so Loki
    parses only the lines that hold the text at all.
    """
    levels = LEVELS[level_rank(query.level):] if query.level is not None else ()
    if stream == "error":
        levels = tuple(lv for lv in levels or LEVELS if level_rank(lv) >= LEVELS.index("ERROR"))
    # `level` is a stream label (lower case) set by the shipper, Promtail and Alloy alike:
    # selecting streams is cheaper than filtering lines.
    selector = f"service={_quote(service)}, env={_quote(environment)}"
    if levels:
        selector += ", level=~" + _quote("|".join(lv.lower() for lv in levels))
    expr = "{" + selector + "}"
    if query.trace_id is not None:
        expr += f" |= {_quote(query.trace_id)}"
    if query.contains is not None:  # the raw line holds the text JSON-escaped
        expr += f" |= {_quote(as_in_line(query.contains))}"
    if query.trace_id is None and query.contains is None and query.min_duration_ms is None:
        return expr
    expr += " | json"
    if query.trace_id is not None:
        expr += f" | trace_id = {_quote(query.trace_id)}"
    if query.contains is not None:
        expr += f" | message =~ {_quote('(?s).*' + _re2_literal(query.contains) + '.*')}"
    if query.min_duration_ms is not None:
        expr += f" | duration_ms >= {_decimal(query.min_duration_ms)}"
    return expr


def _re2_literal(text: str) -> str:
    """`text` as an RE2 pattern matching exactly that text."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def _decimal(value: float) -> str:
    """A number as LogQL reads it: no exponent (`:g` gave 1.23457e+06 for 1234567.8)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _nanos(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1_000_000) * 1000)


async def search_loki(
    base_url: str, service: str, environment: str, stream: str, query: LogQuery,
    timeout: float = 5.0,
) -> list[dict[str, Any]]:
    """The newest matching records from Loki's `/loki/api/v1/query_range`, newest first."""
    params = {
        "query": logql(service, environment, stream, query),
        "start": _nanos(query.since),
        "end": _nanos(query.until),
        "limit": str(query.limit),
        "direction": "backward",
    }
    url = base_url.rstrip("/") + "/loki/api/v1/query_range"
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise LogSourceError(f"Loki did not answer ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise LogSourceError(f"Loki answered {response.status_code}: {response.text[:200]}")
    try:
        results = response.json()["data"]["result"]
        records = []
        for entry in results:
            for _, line in entry["values"]:
                records.append(_record(line, entry.get("stream", {})))
    except (ValueError, KeyError, TypeError):
        raise LogSourceError("Loki's answer is not a streams result") from None
    records.sort(key=lambda r: str(r.get("ts", "")), reverse=True)
    return records[: query.limit]


def _record(line: str, labels: dict[str, str]) -> dict[str, Any]:
    try:
        record = json.loads(line, parse_constant=constant_as_null)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        record = {"message": line}
    for key in ("service", "env", "level"):
        if key in labels:
            record.setdefault(key, labels[key])
    return record
