"""`ErrorStore`: error groups in SQLite (WAL), safe with several processes writing at once.

This module opens the database and writes; the reads (pages, detail, summary, top) are
`ErrorQueries` in queries.py."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from exporter.errors.event import ErrorEvent, Occurrence, storable
from exporter.errors.queries import HOUR, STATUSES, ErrorQueries, Status
from exporter.errors.schema import (
    ADD_HOURLY,
    ADD_ROUTE,
    ADD_SAMPLE,
    ADD_STACK,
    GROUP_AFTER_UPSERT,
    SCHEMA_VERSION,
    SELECT_GROUP,
    TRIM_SAMPLES,
    UPSERT_GROUP,
    statements_from,
)

_log = logging.getLogger("exporter.errors")
FILE_NAME = "errors.sqlite3"
_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
# Groups written between two hand-overs of the interpreter: a batch of hundreds of distinct
# errors held it for milliseconds at a time, and the app's event loop (one core) waited.
_YIELD_EVERY = 8
_FINGERPRINT = itemgetter(0)  # of an `Occurrence`
_TIMESTAMP = itemgetter(6)
# What SQLite (or the values given to it) may refuse of one event; anything else ends the batch.
_REFUSALS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError,
             ValueError, TypeError, OverflowError)


def _text(value: str | None) -> str | None:
    """`value` as SQLite can store it (see `storable`)."""
    return None if value is None else storable(value)


class ErrorStore(ErrorQueries):
    """Error groups with counts, samples, hourly trends and a status; bounded and durable.

    Each write is one short `BEGIN IMMEDIATE` transaction whose counters are incremented by
    SQLite itself (`ON CONFLICT ... count = count + 1`), so concurrent writers in other processes
    never lose a count; they wait for each other up to `busy_timeout`.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_groups: int = 1000,
        samples_per_group: int = 10,
        retention_days: int = 30,
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_groups = max_groups
        self.samples_per_group = samples_per_group
        self.retention_seconds = retention_days * 86400
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        # The writes' one cursor: `Connection.execute` makes a cursor per statement, and the
        # connection keeps a weak reference to each for up to 200 more: thousands of objects
        # a second that live long enough for the garbage collector to promote them.
        self._writes = self._db.cursor()
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        self._enable_wal(busy_timeout)
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        with self._transaction():  # processes opening it at once upgrade it once
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                for statement in statements_from(version):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self.prune()

    def _enable_wal(self, timeout: float) -> None:
        # Switching a new file to WAL needs an exclusive lock and SQLite answers "locked"
        # without waiting when another process is opening it too: retry up to the timeout.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @classmethod
    def in_directory(cls, data_dir: Path, **limits: Any) -> ErrorStore:
        """The store kept in `data_dir/errors.sqlite3`."""
        return cls(data_dir / FILE_NAME, **limits)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()

    # --- writes ---

    def record(self, events: Sequence[ErrorEvent | Occurrence]) -> int:
        """Add `events` (events, or occurrences as the capture queues them) in one
        transaction; returns how many could not be written.

        Occurrences of one group in a batch are added up first (one upsert per group, hour and
        route; only the newest samples are inserted), so a storm of one error costs a few
        statements per batch rather than several per occurrence. When SQLite refuses an event,
        the batch is written again group by group, each under its own savepoint: the refused
        event costs its group (or only itself), never the rest of the batch. An error that ends
        the transaction itself (a closed database, a full disk) propagates.
        """
        if not events:
            return 0
        # By group, in the order given within one: a sort, then runs of one fingerprint, so
        # no list per group outlives its group's statements (see `Occurrence`).
        rows = sorted((event.occurrence() if isinstance(event, ErrorEvent) else event
                       for event in events), key=_FINGERPRINT)
        with self._lock:
            try:  # the usual case: every group written in one go
                with self._transaction():
                    self._record_groups(list(group) for _, group in groupby(rows, _FINGERPRINT))
                return 0
            except _REFUSALS:  # rolled back: again group by group, each under a savepoint
                pass
            lost = 0
            with self._transaction():
                for _, group_rows in groupby(rows, _FINGERPRINT):
                    group = list(group_rows)
                    if self._saved(group):
                        continue
                    # Find the event that was refused: the others of its group are written.
                    lost += sum(not self._saved([row]) for row in group)
        return lost

    def _saved(self, rows: list[Occurrence]) -> bool:
        db = self._writes
        db.execute("SAVEPOINT error_group")
        try:
            self._record_groups([rows])
        except _REFUSALS as exc:
            db.execute("ROLLBACK TO error_group")
            db.execute("RELEASE error_group")
            _log.warning("error store refused an event of %s: %s", rows[0][1], exc)
            return False
        db.execute("RELEASE error_group")
        return True

    def _record_groups(self, groups: Iterable[list[Occurrence]]) -> None:
        """Each group's upsert, then what its occurrences add, for all groups at once."""
        db = self._writes
        hourly: list[tuple[int, int, int]] = []
        routes: list[tuple[int, str | None, int]] = []
        samples: list[tuple[Any, ...]] = []
        stacks: dict[tuple[str, str], None] = {}  # (digest, JSON) of the samples, once each
        trims: list[tuple[int, int, int]] = []
        new: list[int] = []
        kept = self.samples_per_group
        for n, rows in enumerate(groups, 1):
            group_id, count = self._upsert_group(rows)
            hours: dict[int, int] = {}
            by_route: dict[str, int] = {}
            for row in rows:
                hour = int(row[6] // HOUR) * HOUR
                hours[hour] = hours.get(hour, 0) + 1
                if row[7] is not None:
                    by_route[row[7]] = by_route.get(row[7], 0) + 1
            hourly.extend((group_id, hour, hits) for hour, hits in hours.items())
            routes.extend((group_id, _text(route), hits) for route, hits in by_route.items())
            for (_, _, message, _, digest, stack, seen, route, method, trace_id, release,
                 environment, context) in rows[-kept:]:
                stacks[digest, stack] = None
                samples.append((group_id, seen, _text(message), _text(route), _text(method),
                                _text(trace_id), _text(release), _text(environment), digest,
                                _text(context) if context else "{}"))
            if count > kept:  # a group seen no more often than that has no others
                trims.append((group_id, group_id, kept))
            if count == len(rows):  # the group is new
                new.append(group_id)
            if n % _YIELD_EVERY == 0:
                time.sleep(0)  # let the app's threads run (see _YIELD_EVERY)
        db.executemany(ADD_HOURLY, hourly)
        db.executemany(ADD_ROUTE, routes)
        db.executemany(ADD_STACK, stacks)
        db.executemany(ADD_SAMPLE, samples)
        db.executemany(TRIM_SAMPLES, trims)
        if new:  # the least recently seen go first: the new ones last, the newest never
            self._evict_beyond_max(keep=new[-1])

    def _upsert_group(self, rows: list[Occurrence]) -> tuple[int, int]:
        """Count `rows` in their group (made if new); its id and count after."""
        latest = max(rows, key=_TIMESTAMP)
        fingerprint, type_name, message, culprit, *_ = latest
        values = (fingerprint, _text(type_name), _text(message), _text(culprit), len(rows),
                  min(row[6] for row in rows), latest[6])
        if _RETURNING:
            found = self._writes.execute(UPSERT_GROUP + GROUP_AFTER_UPSERT, values).fetchone()
        else:
            self._writes.execute(UPSERT_GROUP, values)
            found = self._writes.execute(SELECT_GROUP, (fingerprint,)).fetchone()
        return int(found[0]), int(found[1])

    def _evict_beyond_max(self, keep: int) -> None:
        total = self._db.execute("SELECT count(*) FROM error_groups").fetchone()[0]
        excess = total - self.max_groups
        if excess > 0:
            # The least recently seen groups go first.
            self._db.execute(
                "DELETE FROM error_groups WHERE id IN (SELECT id FROM error_groups "
                "WHERE id != ? ORDER BY last_seen ASC LIMIT ?)",
                (keep, excess),
            )

    def prune(self) -> int:
        """Drop what is older than the retention; returns the number of groups dropped."""
        cutoff = self._clock() - self.retention_seconds
        with self._lock, self._transaction():
            dropped = self._db.execute(
                "DELETE FROM error_groups WHERE last_seen < ?", (cutoff,)
            ).rowcount
            self._db.execute("DELETE FROM error_hourly WHERE hour < ?", (cutoff - HOUR,))
            self._db.execute("DELETE FROM error_samples WHERE seen < ?", (cutoff,))
            # The stacks no sample names any more (trimmed, evicted or pruned since).
            self._db.execute(
                "DELETE FROM error_stacks WHERE digest NOT IN "
                "(SELECT stack_digest FROM error_samples WHERE stack_digest IS NOT NULL)")
        return int(dropped)

    def set_status(self, group_id: str, status: Status) -> dict[str, Any] | None:
        """Set a group's status; returns the group, or None for an unknown id."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)} (got {status!r})")
        with self._lock, self._transaction():
            changed = self._db.execute(
                "UPDATE error_groups SET status = ?, status_changed = ?, "
                "regression = CASE WHEN ? = 'resolved' THEN 0 ELSE regression END "
                "WHERE fingerprint = ?",
                (status, self._clock(), status, group_id),
            ).rowcount
        return self.group(group_id, samples=False) if changed else None


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`, rolled back on error: takes the write lock up front."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
