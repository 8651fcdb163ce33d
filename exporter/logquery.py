"""Search the exporter's JSON logs: the local daily files, or Loki's query_range when configured.

Local layout (written by the logs feature): `<log_dir>/<stream>_YYYY-MM-DD.log`, one JSON object
per line with at least ts, level, logger, message, service, env, trace_id; access and slow-request
lines add method, route, path, status, duration_ms, client. Streams: `app` (all records),
`error` (ERROR and above), `access`, `slow_requests`.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STREAMS = ("app", "error", "access", "slow_requests")
MAX_LIMIT = 1000


class LogSourceError(RuntimeError):
    """The log source (Loki) could not be read; the message is safe to show."""


@dataclass(frozen=True)
class LogQuery:
    """Filters shared by the local and the Loki search."""

    since: datetime
    until: datetime
    level: str | None = None  # minimum level
    trace_id: str | None = None
    contains: str | None = None
    limit: int = 100
    min_duration_ms: float | None = None  # slow requests only


def _no_constant(_: str) -> None:
    # NaN and Infinity are not JSON a client can read back: they become null.
    return None


def _level_rank(level: Any) -> int:
    try:
        return LEVELS.index(str(level).upper())
    except ValueError:
        return -1


def parse_ts(value: Any) -> datetime | None:
    """An aware UTC datetime from an RFC 3339 string, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def matches(record: dict[str, Any], query: LogQuery) -> bool:
    """True when a parsed record passes every filter of `query`."""
    ts = parse_ts(record.get("ts"))
    if ts is None or not query.since <= ts <= query.until:
        return False
    if query.level is not None and _level_rank(record.get("level")) < _level_rank(query.level):
        return False
    if query.trace_id is not None and record.get("trace_id") != query.trace_id:
        return False
    if query.contains is not None and query.contains not in str(record.get("message", "")):
        return False
    if query.min_duration_ms is not None:
        duration = record.get("duration_ms")
        if not isinstance(duration, (int, float)) or duration < query.min_duration_ms:
            return False
    return True


def _files(log_dir: Path, stream: str, query: LogQuery) -> Iterator[Path]:
    """The stream's daily files that can hold records of the query's range, newest first."""
    day = query.until.date()
    while day >= query.since.date():
        path = log_dir / f"{stream}_{day.isoformat()}.log"
        if path.is_file():
            yield path
        day -= timedelta(days=1)


def search_files(log_dir: Path, stream: str, query: LogQuery) -> list[dict[str, Any]]:
    """The newest `query.limit` matching records of a local stream, newest first."""
    found: list[dict[str, Any]] = []
    for path in _files(log_dir, stream, query):
        # Keep the file's last matches only; a file is in time order.
        tail: deque[dict[str, Any]] = deque(maxlen=query.limit - len(found))
        try:
            with path.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    # Cheap substring checks first: most lines are never parsed.
                    if query.trace_id is not None and query.trace_id not in line:
                        continue
                    if query.contains is not None and query.contains not in line:
                        continue
                    try:
                        record = json.loads(line, parse_constant=_no_constant)
                    except ValueError:
                        continue  # a torn last line while the writer appends
                    if isinstance(record, dict) and matches(record, query):
                        tail.append(record)
        except OSError:
            continue
        found.extend(reversed(tail))
        if len(found) >= query.limit:
            break
    found.sort(key=lambda r: str(r.get("ts", "")), reverse=True)
    return found[: query.limit]


def _quote(text: str) -> str:
    return json.dumps(text)  # a LogQL string literal is a JSON-style double-quoted string


def logql(service: str, environment: str, stream: str, query: LogQuery) -> str:
    """The LogQL expression for `query` on the service's logs."""
    levels = LEVELS[_level_rank(query.level):] if query.level is not None else ()
    if stream == "error":
        levels = tuple(lv for lv in levels or LEVELS if _level_rank(lv) >= LEVELS.index("ERROR"))
    # `level` is a stream label (lower case) set by the shipper, Promtail and Alloy alike:
    # selecting streams is cheaper than filtering lines.
    selector = f"service={_quote(service)}, env={_quote(environment)}"
    if levels:
        selector += ", level=~" + _quote("|".join(lv.lower() for lv in levels))
    expr = "{" + selector + "}"
    if query.trace_id is not None:
        expr += f" |= {_quote(query.trace_id)}"
    if query.contains is not None:
        expr += f" |= {_quote(query.contains)}"
    if query.min_duration_ms is not None:
        expr += f" | json | duration_ms >= {query.min_duration_ms:g}"
    return expr


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
        record = json.loads(line, parse_constant=_no_constant)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        record = {"message": line}
    for key in ("service", "env", "level"):
        if key in labels:
            record.setdefault(key, labels[key])
    return record


_DURATION = re.compile(r"^(\d+)([smhd])$")


def parse_since(text: str, now: datetime) -> datetime:
    """`since` as an RFC 3339 time or a look-back like `15m`, `2h`, `1d`; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if match:
        size = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        seconds = int(match.group(1)) * size
        if seconds > 366 * 86400:
            raise ValueError("look-back longer than a year")
        return now - timedelta(seconds=seconds)
    parsed = parse_ts(text.strip())
    if parsed is None:
        raise ValueError("expected an RFC 3339 time (2026-11-23T16:20:01Z) or 15m, 2h, 1d")
    return parsed
