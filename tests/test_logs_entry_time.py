"""Clients' timestamps are kept, and no other line moves: an entry is refused (422, by index)
only for a time Loki would refuse, or too far ahead of this server's clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from exporter import create_app, load_settings
from exporter.logs.entry_time import TimestampRefused, entry_time
from tests.conftest import free_port
from tests.loki_receiver import LokiReceiver
from tests.test_api_logs import file_lines, pushed_entry, serving

WEEK = 7 * 86400


Sidecar = tuple[httpx.Client, LokiReceiver]


@pytest.fixture
def sidecar(tmp_path: Path, registry: CollectorRegistry) -> Iterator[Sidecar]:
    """The sidecar's app served in a thread, pushing to a strict Loki receiver."""
    loki = LokiReceiver(free_port()).start()
    try:
        settings = load_settings(
            service_name="sidecar", environment="test", log_dir=tmp_path / "logs",
            data_dir=tmp_path / "data", loki_url=loki.url, loki_batch_wait_seconds=0.05,
            log_stdout=False)
        with serving(create_app(settings, registry)) as client:
            yield client, loki
    finally:
        loki.stop()


def iso(seconds: float) -> str:
    """`seconds`, to the millisecond below, as RFC 3339 (what `ns` gives in nanoseconds)."""
    ms = int(seconds * 1000)
    when = datetime.fromtimestamp(ms // 1000, timezone.utc) + timedelta(milliseconds=ms % 1000)
    return when.isoformat(timespec="milliseconds")


def ns(seconds: float) -> int:
    return int(seconds * 1000) * 1_000_000


def test_the_window_defaults_to_what_loki_accepts_and_a_minute_ahead() -> None:
    settings = load_settings()
    assert settings.log_entry_max_age_seconds == WEEK  # Loki's reject_old_samples_max_age
    assert settings.log_entry_max_skew_seconds == 60
    now = 1_800_000_000.0
    at = datetime.fromtimestamp
    assert entry_time(None, now, WEEK, 60) == now
    assert entry_time(at(now - WEEK + 1, timezone.utc), now, WEEK, 60) == now - WEEK + 1
    assert entry_time(at(now + 60, timezone.utc), now, WEEK, 60) == now + 60
    with pytest.raises(TimestampRefused, match="older than 7 days"):
        entry_time(at(now - WEEK - 1, timezone.utc), now, WEEK, 60)
    with pytest.raises(TimestampRefused, match="more than 1 minutes ahead"):
        entry_time(at(now + 61, timezone.utc), now, WEEK, 60)
    naive = datetime(2027, 1, 15, 8, 0, 0)  # no zone: UTC, whatever the server's zone
    assert entry_time(naive, naive.replace(tzinfo=timezone.utc).timestamp(), WEEK, 60) == (
        naive.replace(tzinfo=timezone.utc).timestamp())


def test_an_entry_ahead_keeps_its_time_and_the_lines_after_it_keep_theirs(
    sidecar: Sidecar,
) -> None:
    client, receiver = sidecar
    ahead = time.time() + 50
    reply = client.post("/api/v1/logs/batch", json=[
        {"message": "ahead", "timestamp": iso(ahead)}, {"message": "after, now"}])
    assert reply.status_code == 200 and reply.json()["success"] == 2
    later = client.post("/api/v1/logs/write", json={"message": "later, now"})
    assert later.status_code == 202
    sent = time.time()
    labels, ts, _line = pushed_entry(receiver, '"ahead"')
    for text in ('"after, now"', '"later, now"'):
        other_labels, other_ts, _ = pushed_entry(receiver, text)
        assert other_labels == labels  # the same stream, so once moved to +50 s
        assert other_ts <= ns(sent) + 1_000_000, f"{text} was moved ahead with the entry before"
    assert ts == ns(ahead)


def test_an_entry_from_two_hours_ago_keeps_its_time(sidecar: Sidecar) -> None:
    client, receiver = sidecar
    client.post("/api/v1/logs/write", json={"message": "now first"})
    pushed_entry(receiver, '"now first"')
    earlier = time.time() - 7200
    reply = client.post("/api/v1/logs/write",
                         json={"message": "two hours ago", "timestamp": iso(earlier)})
    assert reply.status_code == 202
    _labels, ts, line = pushed_entry(receiver, '"two hours ago"')
    assert ts == ns(earlier), "the entry was stamped another time"
    assert json.loads(line)["ts"] == iso(earlier).replace("+00:00", "Z")


def test_a_batch_with_a_time_loki_would_refuse_is_refused_whole_naming_each_index(
    sidecar: Sidecar, tmp_path: Path
) -> None:
    client, _receiver = sidecar
    now = time.time()
    batch = [{"message": "fine 0"},
             {"message": "nine minutes ahead", "timestamp": iso(now + 540)},
             {"message": "fine 2", "timestamp": iso(now - 3600)},
             {"message": "eight days ago", "timestamp": iso(now - 8 * 86400)},
             {"message": "bad level", "level": "loud"}]
    for body, where in ((batch, ["body"]), ({"entries": batch}, ["body", "entries"])):
        reply = client.post("/api/v1/logs/batch", json=body)
        assert reply.status_code == 422, reply.text
        detail = reply.json()["detail"]
        assert [d["loc"] for d in detail] == [
            [*where, 1, "timestamp"], [*where, 3, "timestamp"], [*where, 4, "level"]]
        assert "ahead of this server's clock" in detail[0]["msg"]
        assert "older than 7 days" in detail[1]["msg"] and "Loki" in detail[1]["msg"]
    one = client.post("/api/v1/logs/write",
                       json={"message": "two minutes ahead", "timestamp": iso(now + 120)})
    assert one.status_code == 422 and one.json()["detail"][0]["loc"] == ["body", "timestamp"]
    written = [d["message"] for d in file_lines(tmp_path, "app")
               if d["logger"] == "exporter.ingest"]
    assert written == [], "a refused batch wrote entries"


def test_the_window_is_configurable(tmp_path: Path, registry: CollectorRegistry) -> None:
    settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data",
                             log_stdout=False, log_entry_max_age_seconds=3600,
                             log_entry_max_skew_seconds=600)
    now = time.time()
    with serving(create_app(settings, registry)) as client:
        ahead = client.post("/api/v1/logs/write",
                            json={"message": "x", "timestamp": iso(now + 540)})
        old = client.post("/api/v1/logs/write",
                          json={"message": "x", "timestamp": iso(now - 7200)})
    assert ahead.status_code == 202
    assert old.status_code == 422 and "older than 1 hours" in old.text


def test_naive_timestamps_are_utc(sidecar: Sidecar) -> None:
    client, receiver = sidecar
    when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    reply = client.post("/api/v1/logs/write", json={
        "message": "naive", "timestamp": when.replace(tzinfo=None).isoformat()})
    assert reply.status_code == 202
    _labels, ts, _line = pushed_entry(receiver, '"naive"')
    assert ts == ns(when.timestamp())
