"""The SQLite error store: counts, status, regressions, bounds, restarts, concurrent writers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.errors.event import ErrorEvent, event_from_exception
from exporter.errors.store import ErrorStore


class Clock:
    """A settable clock, so retention and trends are tested without waiting."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _event(kind: type[Exception], clock: Clock, route: str | None = "/orders/{id}") -> ErrorEvent:
    try:
        raise kind("order 12 failed")
    except Exception as exc:
        return event_from_exception(exc, route=route, method="GET", trace_id="ab" * 16,
                                    release="1.2.3", environment="test", timestamp=clock.now)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[ErrorStore]:
    store = ErrorStore(tmp_path / "errors.sqlite3", max_groups=3, samples_per_group=2,
                       retention_days=7, clock=clock)
    yield store
    store.close()


def test_occurrences_of_one_bug_add_up_in_one_group(store: ErrorStore, clock: Clock) -> None:
    store.record([_event(KeyError, clock) for _ in range(5)])
    total, groups = store.groups()
    assert total == 1
    group = groups[0]
    assert group["count"] == 5 and group["status"] == "unresolved" and not group["regression"]
    assert group["type"] == "KeyError"
    detail = store.group(group["id"])
    assert detail is not None
    assert detail["routes"] == {"/orders/{id}": 5}
    assert len(detail["samples"]) == 2  # bounded by samples_per_group
    sample = detail["samples"][0]
    assert (sample["trace_id"], sample["release"], sample["environment"]) == (
        "ab" * 16, "1.2.3", "test")
    assert sample["stack"][-1]["function"] == "_event"
    assert detail["trend"][-1]["count"] == 5


def test_a_resolved_group_seen_again_reopens_as_a_regression(
    store: ErrorStore, clock: Clock
) -> None:
    store.record([_event(KeyError, clock)])
    group_id = store.groups()[1][0]["id"]
    resolved = store.set_status(group_id, "resolved")
    assert resolved is not None and resolved["status"] == "resolved"
    clock.now += 60
    store.record([_event(KeyError, clock)])
    group = store.group(group_id)
    assert group is not None
    assert (group["status"], group["regression"], group["count"]) == ("unresolved", True, 2)
    assert store.summary()["regressions"] == 1


def test_an_ignored_group_stays_ignored(store: ErrorStore, clock: Clock) -> None:
    store.record([_event(KeyError, clock)])
    group_id = store.groups()[1][0]["id"]
    store.set_status(group_id, "ignored")
    store.record([_event(KeyError, clock)])
    group = store.group(group_id)
    assert group is not None and (group["status"], group["count"]) == ("ignored", 2)


def test_unknown_ids_and_bad_statuses(store: ErrorStore) -> None:
    assert store.group("nope") is None
    assert store.set_status("nope", "resolved") is None
    with pytest.raises(ValueError, match="status must be one of"):
        store.set_status("nope", "closed")  # type: ignore[arg-type]


def test_the_least_recently_seen_groups_go_beyond_max_groups(
    store: ErrorStore, clock: Clock
) -> None:
    kinds = [KeyError, ValueError, TypeError, OSError]
    for kind in kinds:
        clock.now += 10
        store.record([_event(kind, clock)])
    total, groups = store.groups()
    assert total == 3
    assert sorted(group["type"] for group in groups) == ["OSError", "TypeError", "ValueError"]


def test_one_batch_of_more_new_groups_than_max_groups_keeps_the_newest(
    store: ErrorStore, clock: Clock
) -> None:
    events = []
    for kind in (KeyError, ValueError, TypeError, OSError, LookupError):
        clock.now += 10
        events.append(_event(kind, clock))
    assert store.record(events) == 0
    total, groups = store.groups()
    assert total == 3  # max_groups
    assert sorted(group["type"] for group in groups) == ["LookupError", "OSError", "TypeError"]


def test_groups_older_than_the_retention_are_pruned(store: ErrorStore, clock: Clock) -> None:
    store.record([_event(KeyError, clock)])
    clock.now += 3 * 86400
    store.record([_event(ValueError, clock)])
    clock.now += 5 * 86400  # KeyError is 8 days old now, ValueError 5
    assert store.prune() == 1
    assert [group["type"] for group in store.groups()[1]] == ["ValueError"]


def test_the_store_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "errors.sqlite3"
    first = ErrorStore(path, clock=clock)
    first.record([_event(KeyError, clock)])
    first.close()
    second = ErrorStore(path, clock=clock)
    second.record([_event(KeyError, clock)])
    assert second.groups()[1][0]["count"] == 2
    second.close()


def test_filters_summary_and_top(store: ErrorStore, clock: Clock) -> None:
    store.record([_event(KeyError, clock, route="/a")] * 3)
    clock.now += 7200
    store.record([_event(ValueError, clock, route="/b")])
    assert [g["type"] for g in store.groups(route="/a")[1]] == ["KeyError"]
    assert [g["type"] for g in store.groups(type="ValueError")[1]] == ["ValueError"]
    assert [g["type"] for g in store.groups(since=clock.now - 60)[1]] == ["ValueError"]
    assert store.groups(status="resolved")[0] == 0
    total, page = store.groups(limit=1, offset=1)
    assert total == 2 and [g["type"] for g in page] == ["KeyError"]
    summary = store.summary()
    assert (summary["groups"], summary["events"], summary["new_last_hour"],
            summary["new_last_day"], summary["events_last_hour"]) == (2, 4, 1, 2, 1)
    assert summary["by_status"] == {"unresolved": 2, "resolved": 0, "ignored": 0}
    assert len(summary["trend"]) == 24 and sum(p["count"] for p in summary["trend"]) == 4
    top_day = store.top(window_hours=24)
    assert [(g["type"], g["window_count"]) for g in top_day] == [("KeyError", 3), ("ValueError", 1)]
    assert [g["type"] for g in store.top(window_hours=1)] == ["ValueError"]


_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from exporter.errors.event import event_from_exception
    from exporter.errors.store import ErrorStore

    path, go, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    store = ErrorStore(path)
    def fail():
        raise RuntimeError("shared failure")
    try:
        fail()
    except RuntimeError as exc:
        event = event_from_exception(exc, route="/r")
    while not go.exists():
        time.sleep(0.005)
    for _ in range(n):
        store.record([event])  # one transaction per event: the most contended case
""")


def test_two_processes_writing_at_once_lose_no_count(tmp_path: Path) -> None:
    path, go, per_process = tmp_path / "errors.sqlite3", tmp_path / "go", 1000
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(go), str(per_process)])
        for _ in range(2)
    ]
    time.sleep(0.5)  # both have opened the store and wait for the signal
    go.touch()
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]
    store = ErrorStore(path)
    total, groups = store.groups()
    assert total == 1
    assert groups[0]["count"] == 2 * per_process
    detail = store.group(groups[0]["id"])
    assert detail is not None and detail["routes"] == {"/r": 2 * per_process}
    assert sum(point["count"] for point in detail["trend"]) == 2 * per_process
    store.close()


def test_a_lone_surrogate_is_stored_replaced_and_the_batch_is_kept(
    store: ErrorStore, clock: Clock
) -> None:
    name = os.fsdecode(b"report-\xff.csv")  # '\udcff', as a file name from a listing
    try:
        raise FileNotFoundError(f"bad {name}")
    except FileNotFoundError as exc:
        bad = event_from_exception(exc, route="/files/" + name, context={"file": name},
                                   timestamp=clock.now)
    assert store.record([_event(KeyError, clock), bad, _event(ValueError, clock)]) == 0
    total, groups = store.groups()
    assert total == 3
    stored = next(g for g in groups if g["type"] == "FileNotFoundError")
    assert stored["message"] == "bad report-?.csv"
    detail = store.group(stored["id"])
    assert detail is not None and detail["samples"][0]["context"] == {"file": "report-?.csv"}


def test_an_event_sqlite_refuses_costs_only_itself(store: ErrorStore, clock: Clock) -> None:
    broken = _event(TypeError, clock)._replace(timestamp=float("nan"))
    assert store.record([_event(KeyError, clock), broken, _event(ValueError, clock)]) == 1
    assert {g["type"] for g in store.groups()[1]} == {"KeyError", "ValueError"}


def test_text_stored_by_an_earlier_scrubber_is_scrubbed_again_when_read(
    store: ErrorStore, clock: Clock
) -> None:
    # As a version with fewer rules stored it: the passphrase and the key as they came.
    event = _event(KeyError, clock)._replace(
        message="unlock failed: passphrase=old-pp-1 key=old-k-2",
        context={"api": {"key": "old-k-3"},
                 "note": "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0x.s"},
    )
    store.record([event])
    _total, groups = store.groups()
    detail = store.group(groups[0]["id"])
    answers = repr((groups, store.top(), detail))
    for secret in ("old-pp-1", "old-k-2", "old-k-3", "eyJzdWIiOiIxIn0x"):
        assert secret not in answers, secret
    assert detail is not None
    assert detail["samples"][0]["message"] == "unlock failed: passphrase=[Filtered] key=[Filtered]"
