"""The background writer: never blocks the caller, counts drops, drains on stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import load_settings
from exporter.config import SettingsError
from exporter.errors.event import ErrorEvent, event_from_exception
from exporter.errors.store import ErrorStore
from exporter.errors.worker import BackgroundWorker


def _event() -> ErrorEvent:
    try:
        raise LookupError("gone")
    except LookupError as exc:
        return event_from_exception(exc)


def test_a_full_queue_drops_and_counts_and_stop_writes_the_rest(tmp_path: Path) -> None:
    store = ErrorStore(tmp_path / "errors.sqlite3")
    drops: list[int] = []
    writer = BackgroundWorker(store.record, name="test-store", max_queued=5,
                              on_drop=lambda: drops.append(1))
    event = _event()
    with store._lock:  # the store is busy (as when another process holds the write lock)
        assert writer.submit(event)  # the writer thread takes it and waits for the store
        accepted = sum(writer.submit(event) for _ in range(20))
    writer.stop(timeout=10)
    assert writer.dropped == len(drops) == 20 - accepted
    assert 4 <= accepted <= 5  # 4 when the thread had not yet taken the first event
    assert store.groups()[1][0]["count"] == 1 + accepted
    assert not writer.submit(event) and writer.dropped == 21 - accepted  # stopped: dropped
    writer.stop()  # idempotent
    store.close()


def test_flush_waits_for_everything_submitted(tmp_path: Path) -> None:
    store = ErrorStore(tmp_path / "errors.sqlite3")
    writer = BackgroundWorker(store.record, name="test-store")
    for _ in range(500):
        writer.submit(_event())
    assert writer.flush(timeout=10)
    assert store.groups()[1][0]["count"] == 500
    writer.stop()
    store.close()


def test_a_bad_sentry_dsn_is_named_but_never_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(sentry_dsn="https://sentry.example.com/42?key=topsecret")
    message = str(caught.value)
    assert message.startswith("EXPORTER_SENTRY_DSN: not a Sentry DSN")
    assert "topsecret" not in message


def test_a_good_dsn_is_kept_secret() -> None:
    settings = load_settings(sentry_dsn="https://abc123@o1.ingest.sentry.io/42")
    assert "abc123" not in repr(settings) and "abc123" not in str(settings.model_dump())


def test_the_periodic_task_runs_while_no_error_comes(tmp_path: Path) -> None:
    import time

    runs: list[float] = []
    writer = BackgroundWorker(lambda batch: None, name="test-prune",
                              periodic=lambda: runs.append(time.monotonic()), period=0.05)
    time.sleep(0.4)
    writer.stop()
    assert len(runs) >= 3, "pruning waited for an error to be captured"
