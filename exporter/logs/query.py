"""Search the exporter's JSON logs in the local daily files, with the query and the `since` forms
that Loki's side of the same search (`logql.py`) shares.

Local layout (written by the logs feature): `<log_dir>/<stream>_YYYY-MM-DD.log`, one JSON object
per line with at least ts, level, logger, message, service, env, trace_id; access and slow-request
lines add method, route, path, status, duration_ms, client. Streams: `app` (all records),
`error` (ERROR and above; searched together with the access lines at ERROR and above, the failed
requests, as in Loki where they carry `level="error"`), `access`, `slow_requests`. Files are
named by UTC date and read from the end; both sources give the same answer to the same query.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from exporter.logs.backwards import lines_backwards
from exporter.logs.formatter import as_in_line

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STREAMS = ("app", "error", "access", "slow_requests")
MAX_LIMIT = 1000


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


def constant_as_null(_: str) -> None:
    """`json.loads`' `parse_constant`: NaN and Infinity are not JSON a client can read back, so
    they become null."""
    return None


def level_rank(level: Any) -> int:
    """The position of `level` in LEVELS (any case); -1 for anything else."""
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
    if query.level is not None and level_rank(record.get("level")) < level_rank(query.level):
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


# Lines are appended as they are written, and a line's `ts` is at most this much later than
# the moment it was written (ingested entries may be up to 10 minutes ahead): reading a file
# backwards, once a line is older than what is wanted by more than this, so is the rest.
_SLACK = timedelta(minutes=15)
_TS_PREFIX = re.compile(r'^\{\s*"ts"\s*:\s*"([^"]{10,40})"')


def _files(log_dir: Path, stream: str, query: LogQuery) -> list[tuple[date, Path]]:
    """The stream's daily files that can hold records of the query's range, newest first.

    Files are named by UTC date; only the files that exist are looked at.
    """
    first = query.since.astimezone(timezone.utc).date()
    last = (query.until + _SLACK).astimezone(timezone.utc).date()
    pattern = re.compile(rf"^{re.escape(stream)}_(\d{{4}}-\d{{2}}-\d{{2}})\.log$")
    found: list[tuple[date, Path]] = []
    try:
        names = os.listdir(log_dir)
    except OSError:
        return []
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if first <= day <= last:
            found.append((day, log_dir / name))
    return sorted(found, reverse=True)


def _line_ts(line: str) -> datetime | None:
    match = _TS_PREFIX.match(line)  # the formatter writes `ts` first: no JSON parse needed
    return parse_ts(match.group(1)) if match else None


def search_files(log_dir: Path, stream: str, query: LogQuery) -> list[dict[str, Any]]:
    """The newest `query.limit` matching records of a local stream, newest first.

    Each file is read from its end and left as soon as its lines are older than the range or
    than the newest `limit` matches already found. The `error` stream also takes the access
    lines at ERROR and above (the requests that failed), as Loki's `level` label does.
    """
    sources = [(stream, query)]
    if stream == "error":
        sources.append(("access", replace(query, level=_at_least(query.level, "ERROR"))))
    candidates = sorted(
        ((day, path, where)
         for name, where in sources for day, path in _files(log_dir, name, where)),
        key=lambda item: item[0], reverse=True,
    )
    kept: list[tuple[datetime, int, dict[str, Any]]] = []  # a min-heap of the newest matches
    order = 0
    for day, path, where in candidates:
        if len(kept) >= query.limit and _day_end(day) + _SLACK < kept[0][0]:
            continue  # everything in it is older than what is kept
        try:
            for line in lines_backwards(path):
                ts = _line_ts(line)
                if ts is not None and (ts < query.since - _SLACK or (
                        len(kept) >= query.limit and ts < kept[0][0] - _SLACK)):
                    break
                record = _matching(line, where)
                if record is None:
                    continue
                order -= 1  # of equal timestamps, the later line is the newer
                item = (parse_ts(record.get("ts")) or query.since, order, record)
                if len(kept) < query.limit:
                    heapq.heappush(kept, item)
                elif item[:2] > kept[0][:2]:
                    heapq.heapreplace(kept, item)
        except OSError:
            continue
    return [record for _ts, _order, record in sorted(kept, key=lambda k: k[:2], reverse=True)]


def _matching(line: str, query: LogQuery) -> dict[str, Any] | None:
    # Cheap substring checks first: most lines are never parsed.
    if query.trace_id is not None and query.trace_id not in line:
        return None
    if query.contains is not None and as_in_line(query.contains) not in line:
        return None
    try:
        record = json.loads(line, parse_constant=constant_as_null)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) and matches(record, query) else None


def _at_least(level: str | None, floor: str) -> str:
    return floor if level is None or level_rank(level) < level_rank(floor) else level


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), timezone.utc)
