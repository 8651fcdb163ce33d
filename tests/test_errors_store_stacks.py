"""How the error store keeps stacks (once each, named by digest), upgrades a store an earlier
version made, and what a capture queues for its writer (plain tuples the collector untracks)."""

from __future__ import annotations

import gc
import json
import sqlite3
from pathlib import Path

from exporter.errors.event import ErrorEvent, event_from_exception, occurrence
from exporter.errors.schema import SCHEMA
from exporter.errors.store import ErrorStore


def _raise(kind: type[Exception], depth: int) -> None:
    if depth:
        _raise(kind, depth - 1)
    raise kind("order 12 failed")


def _caught(kind: type[Exception], depth: int = 3) -> Exception:
    try:
        _raise(kind, depth)
    except Exception as exc:
        return exc
    raise AssertionError("not raised")


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_a_stack_is_stored_once_however_many_samples_name_it(tmp_path: Path) -> None:
    path = tmp_path / "errors.sqlite3"
    store = ErrorStore(path, samples_per_group=5)
    shallow = [occurrence(_caught(KeyError, 2), route="/a") for _ in range(20)]
    deep = [event_from_exception(_caught(KeyError, 7), route="/b") for _ in range(3)]
    assert store.record([*shallow, *deep]) == 0
    assert store.record(shallow[:4]) == 0
    stacks = _rows(path, "SELECT digest, stack FROM error_stacks")
    assert len(stacks) == 2  # two depths, two stacks, for 5 samples and 27 occurrences
    assert _rows(path, "SELECT count(*), count(DISTINCT stack_digest), max(stack) "
                       "FROM error_samples") == [(5, 2, "[]")]  # no frames, for a 1st version
    _total, groups = store.groups()
    detail = store.group(groups[0]["id"])
    assert detail is not None and groups[0]["count"] == 27
    depths = [sum(frame["function"] == "_raise" for frame in sample["stack"])
              for sample in detail["samples"]]
    assert depths == [3, 3, 3, 3, 8]  # newest first: the last batch was the shallow one
    assert detail["samples"][0]["stack"][-1] == {
        "module": __name__, "function": "_raise", "filename": __file__,
        "lineno": _raise.__code__.co_firstlineno + 3, "in_app": True}
    store.close()


def test_stacks_no_sample_names_are_pruned(tmp_path: Path) -> None:
    path = tmp_path / "errors.sqlite3"
    store = ErrorStore(path, samples_per_group=2)
    store.record([occurrence(_caught(ValueError, depth)) for depth in (1, 2, 3, 4)])
    assert len(_rows(path, "SELECT id FROM error_stacks")) == 2  # the newest two samples' only
    store.record([occurrence(_caught(ValueError, depth)) for depth in (5, 6)])
    assert len(_rows(path, "SELECT id FROM error_stacks")) == 4  # trimmed samples leave theirs
    store.prune()
    kept = _rows(path, "SELECT digest FROM error_stacks ORDER BY digest")
    named = _rows(path, "SELECT DISTINCT stack_digest FROM error_samples ORDER BY stack_digest")
    assert kept == named and len(kept) == 2
    store.close()


def test_a_store_made_by_the_first_version_is_upgraded_and_keeps_its_samples(
    tmp_path: Path,
) -> None:
    path = tmp_path / "errors.sqlite3"
    old_stack = [{"module": "shop", "function": "pay", "filename": "shop.py", "lineno": 9,
                  "in_app": True}]
    with sqlite3.connect(path) as db:  # as version 1 wrote it: the stack on the sample
        for statement in SCHEMA.split(";"):
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        event = event_from_exception(_caught(KeyError), timestamp=1_000.0)
        db.execute("INSERT INTO error_groups (fingerprint, type, message, culprit, count, "
                   "first_seen, last_seen) VALUES (?, 'KeyError', 'm', 'c', 1, 1000, 1000)",
                   (event.fingerprint,))
        db.execute("INSERT INTO error_samples (group_id, seen, message, stack, context) "
                   "VALUES (1, 1000, 'old', ?, '{}')", (json.dumps(old_stack),))
    store = ErrorStore(path, retention_days=100_000)
    assert store.record([event._replace(timestamp=2_000.0)]) == 0
    assert _rows(path, "PRAGMA user_version") == [(2,)]
    detail = store.group(event.fingerprint)
    assert detail is not None and detail["count"] == 2
    old, new = detail["samples"][1], detail["samples"][0]
    assert old["message"] == "old" and old["stack"] == old_stack
    assert new["stack"] == [frame.as_dict() for frame in event.stack]
    store.close()
    reopened = ErrorStore(path, retention_days=100_000)  # opened again: nothing to upgrade
    assert reopened.group(event.fingerprint) == detail
    reopened.close()


def test_what_a_capture_queues_is_untracked_by_the_garbage_collector() -> None:
    exc = _caught(KeyError)
    queued = [occurrence(exc, route="/a", method="GET", trace_id="ab" * 16),
              occurrence(exc, route="/a", context={"order": 12, "note": "x"}),
              event_from_exception(exc, context={"order": 12}).occurrence()]
    gc.collect()
    assert [gc.is_tracked(row) for row in queued] == [False, False, False]
    assert not isinstance(queued[0], ErrorEvent)  # a named tuple would stay tracked


def test_an_occurrence_holds_what_its_event_holds(tmp_path: Path) -> None:
    exc = _caught(OSError)
    fields = {"route": "/files/{name}", "method": "PUT", "trace_id": "cd" * 16,
              "release": "1.2", "environment": "test",
              "context": {"password": "hunter2", "size": 3}}
    event = event_from_exception(exc, **fields)  # type: ignore[arg-type]
    row = occurrence(exc, **fields)  # type: ignore[arg-type]
    assert row[:6] == event.occurrence()[:6] and row[7:] == event.occurrence()[7:]
    assert json.loads(row[12] or "") == event.context == {"password": "[Filtered]", "size": 3}
    store = ErrorStore(tmp_path / "errors.sqlite3")
    store.record([row, event])
    detail = store.group(event.fingerprint)
    assert detail is not None
    assert detail["samples"][0]["stack"] == detail["samples"][1]["stack"]
    assert detail["samples"][0]["context"] == detail["samples"][1]["context"] == event.context
    store.close()
