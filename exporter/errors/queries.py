"""`ErrorQueries`: what the error store answers: pages of groups, one group with its samples,
the summary and the top groups of a window. `ErrorStore` (store.py) adds opening and writing."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

from exporter.errors.scrub import scrub_text, scrub_value

Status = Literal["unresolved", "resolved", "ignored"]
STATUSES: tuple[Status, ...] = ("unresolved", "resolved", "ignored")
HOUR = 3600

_GROUP_COLUMNS = (
    "fingerprint, type, message, culprit, status, regression, count, first_seen, last_seen"
)


def _group_row(row: Sequence[Any]) -> dict[str, Any]:
    keys = ("id", "type", "message", "culprit", "status", "regression", "count",
            "first_seen", "last_seen")
    group = dict(zip(keys, row[:9], strict=True))
    group["regression"] = bool(group["regression"])
    # Scrubbed when stored, and again when read: text stored by an earlier version, with fewer
    # rules, is read with today's.
    group["message"] = scrub_text(group["message"])
    return group


class ErrorQueries:
    """The store's reads, each under the store's lock; `ErrorStore` opens the database."""

    _db: sqlite3.Connection
    _lock: threading.Lock
    _clock: Callable[[], float]

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def groups(
        self,
        *,
        status: Status | None = None,
        type: str | None = None,
        route: str | None = None,
        since: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        """`(total matching, one page of groups)`, most recently seen first."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        for column, value in (("status", status), ("type", type)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("last_seen >= ?")
            params.append(since)
        if route is not None:
            where.append("EXISTS (SELECT 1 FROM error_routes r WHERE r.group_id = g.id "
                         "AND r.route = ?)")
            params.append(route)
        condition = " AND ".join(where)
        total = self._query(f"SELECT count(*) FROM error_groups g WHERE {condition}", params)
        rows = self._query(
            f"SELECT {_GROUP_COLUMNS} FROM error_groups g WHERE {condition} "
            "ORDER BY last_seen DESC, id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return int(total[0][0]), [_group_row(row) for row in rows]

    def group(self, group_id: str, *, samples: bool = True) -> dict[str, Any] | None:
        """One group with its routes, hourly counts (last 24 h) and samples; None if unknown."""
        rows = self._query(
            f"SELECT {_GROUP_COLUMNS}, id FROM error_groups WHERE fingerprint = ?", (group_id,)
        )
        if not rows:
            return None
        group = _group_row(rows[0])
        key = rows[0][9]
        group["routes"] = {
            route: count for route, count in self._query(
                "SELECT route, count FROM error_routes WHERE group_id = ? ORDER BY count DESC",
                (key,))
        }
        group["trend"] = self._trend(self._clock(), 24, key)
        if samples:
            group["samples"] = [
                {"seen": seen, "message": scrub_text(message), "route": route,
                 "method": method, "trace_id": trace_id, "release": release,
                 "environment": environment, "stack": json.loads(stack),
                 "context": scrub_value(json.loads(context))}
                for seen, message, route, method, trace_id, release, environment, stack, context
                in self._query(
                    "SELECT s.seen, s.message, s.route, s.method, s.trace_id, s.release, "
                    "s.environment, coalesce(st.stack, s.stack), s.context "
                    "FROM error_samples s LEFT JOIN error_stacks st ON st.digest = s.stack_digest "
                    "WHERE s.group_id = ? ORDER BY s.id DESC", (key,))
            ]
        return group

    def _trend(self, now: float, hours: int, group_key: int | None = None) -> list[dict[str, Any]]:
        current = int(now // HOUR) * HOUR
        first = current - (hours - 1) * HOUR
        sql = "SELECT hour, sum(count) FROM error_hourly WHERE hour >= ?"
        params: list[Any] = [first]
        if group_key is not None:
            sql += " AND group_id = ?"
            params.append(group_key)
        counts = dict(self._query(sql + " GROUP BY hour", params))
        return [{"hour": hour, "count": int(counts.get(hour, 0))}
                for hour in range(first, current + 1, HOUR)]

    def summary(self) -> dict[str, Any]:
        """Totals by status, events, groups new in the last hour and day, and a 24 h trend."""
        now = self._clock()
        by_status = dict(self._query("SELECT status, count(*) FROM error_groups GROUP BY status"))
        (events, groups, new_hour, new_day, regressions), = self._query(
            "SELECT coalesce(sum(count), 0), count(*), "
            "coalesce(sum(first_seen >= ?), 0), coalesce(sum(first_seen >= ?), 0), "
            "coalesce(sum(regression = 1 AND status = 'unresolved'), 0) FROM error_groups",
            (now - HOUR, now - 24 * HOUR),
        )
        trend = self._trend(now, 24)
        return {
            "groups": int(groups),
            "events": int(events),
            "by_status": {status: int(by_status.get(status, 0)) for status in STATUSES},
            "new_last_hour": int(new_hour),
            "new_last_day": int(new_day),
            "regressions": int(regressions),
            "events_last_hour": trend[-1]["count"],
            "events_last_day": sum(point["count"] for point in trend),
            "trend": trend,
        }

    def top(self, *, window_hours: int = 24, limit: int = 10) -> list[dict[str, Any]]:
        """The groups with the most events in the last `window_hours` (whole hours)."""
        first = (int(self._clock() // HOUR) - window_hours + 1) * HOUR
        rows = self._query(
            f"SELECT {', '.join('g.' + c.strip() for c in _GROUP_COLUMNS.split(','))}, "
            "sum(h.count) AS window_count FROM error_hourly h JOIN error_groups g "
            "ON g.id = h.group_id WHERE h.hour >= ? GROUP BY g.id "
            "ORDER BY window_count DESC, g.last_seen DESC LIMIT ?",
            (first, limit),
        )
        return [{**_group_row(row), "window_count": int(row[9])} for row in rows]
