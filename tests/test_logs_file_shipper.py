"""FileShipper against a strict in-test Loki receiver: the daily files are its write-ahead log,
read from positions saved after each acknowledged push."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.logs.file_shipper import FileShipper
from exporter.logs.formatter import JsonFormatter
from exporter.logs.loki_config import LokiConfig
from exporter.logs.positions import Position, Positions
from tests.loki_receiver import LokiReceiver, running_receiver

DAY = time.strftime("%Y-%m-%d", time.gmtime())
FORMATTER = JsonFormatter("shop", "test")


@pytest.fixture
def receiver() -> Iterator[LokiReceiver]:
    with running_receiver() as rx:
        yield rx


def make_shipper(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry, **options: object
) -> FileShipper:
    config = LokiConfig(url=receiver.url, spool_dir=tmp_path / "unused", service="shop",
                        env="test", batch_wait=0.05, backoff_base=0.05, backoff_max=0.2,
                        close_timeout=2.0)
    for name, value in options.items():
        setattr(config, name, value)
    (tmp_path / "logs").mkdir(exist_ok=True)
    return FileShipper(config, tmp_path / "logs", tmp_path / "data" / "positions.json", registry)


def line(seq: int, created: float | None = None, level: str = "info", **fields: object) -> str:
    return FORMATTER.render_fields(time.time() if created is None else created, level,
                                   "test", {"message": "record", "seq": seq, **fields})


def append(tmp_path: Path, lines: list[str], name: str = f"app_{DAY}.log") -> Path:
    path = tmp_path / "logs" / name
    with open(path, "a", encoding="utf-8") as file:
        file.write("".join(text + "\n" for text in lines))
    return path


def seqs(receiver: LokiReceiver) -> list[int]:
    return [json.loads(text)["seq"] for text in receiver.lines()]


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def drops(registry: CollectorRegistry, reason: str) -> float | None:
    return registry.get_sample_value("loki_shipper_lines_dropped_total", {"reason": reason})


def test_lines_keep_their_own_timestamps_and_labels_and_only_app_and_access_are_read(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry, static_labels={"region": "eu"})
    ahead, late = time.time() + 540, time.time() - 7200
    append(tmp_path, [line(0, ahead), line(1, late, "error"), line(2, service="billing")])
    append(tmp_path, [line(3)], f"access_{DAY}.log")
    for other in (f"error_{DAY}.log", f"slow_requests_{DAY}.log", f"app_{DAY}.log.1"):
        append(tmp_path, [line(99)], other)
    wait_until(lambda: receiver.count >= 4)
    shipper.close()
    assert sorted(seqs(receiver)) == [0, 1, 2, 3] and receiver.errors == []
    by_seq = {json.loads(text)["seq"]: (labels, ts) for labels, ts, text in receiver.entries}
    # Each entry at its own `ts` (to the millisecond), however far from its neighbours.
    assert by_seq[0][1] == round(ahead * 1000) * 1_000_000
    assert by_seq[1][1] == round(late * 1000) * 1_000_000
    assert by_seq[1][0] == {"service": "shop", "env": "test", "level": "error", "kind": "app",
                            "region": "eu"}
    assert by_seq[2][0]["service"] == "billing"
    assert by_seq[3][0]["kind"] == "access"  # the label promtail/ and alloy/ give access_*.log
    assert registry.get_sample_value("loki_shipper_lines_sent_total") == 4


def test_positions_are_saved_after_each_push_and_a_new_shipper_resumes_there(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry)
    path = append(tmp_path, [line(n) for n in range(10)])
    wait_until(lambda: receiver.count >= 10)
    shipper.close()
    saved = json.loads((tmp_path / "data" / "positions.json").read_text())
    stat = path.stat()
    assert saved["files"][path.name] == [stat.st_dev, stat.st_ino, stat.st_size]
    append(tmp_path, [line(n) for n in range(10, 20)])  # while no shipper runs
    again = make_shipper(receiver, tmp_path, CollectorRegistry())
    wait_until(lambda: receiver.count >= 20)
    again.close()
    assert seqs(receiver) == list(range(20)), "each line once, in order"


def test_a_first_start_ships_what_comes_after_it_not_what_was_there(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    (tmp_path / "logs").mkdir()
    append(tmp_path, [line(n) for n in range(5)])  # written by a version that shipped itself
    shipper = make_shipper(receiver, tmp_path, registry)
    append(tmp_path, [line(5)])
    wait_until(lambda: receiver.count >= 1)
    shipper.close()
    assert seqs(receiver) == [5]


def test_a_file_made_again_or_truncated_is_read_from_its_start(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry)
    path = append(tmp_path, [line(n) for n in range(3)])
    wait_until(lambda: receiver.count >= 3)
    path.unlink()
    append(tmp_path, [line(3, note="a longer line")])  # same name, another inode, shorter
    wait_until(lambda: receiver.count >= 4)
    path.write_text(line(4) + "\n")  # truncated in place: same inode, shorter than before
    wait_until(lambda: receiver.count >= 5)
    shipper.close()
    assert seqs(receiver) == [0, 1, 2, 3, 4]


def test_a_line_without_its_newline_waits_and_a_foreign_line_is_shipped_as_it_is(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry)
    path = tmp_path / "logs" / f"app_{DAY}.log"
    whole, after = line(0), line(1)
    with open(path, "a") as file:
        file.write(whole[:20])
    time.sleep(0.5)
    assert receiver.count == 0, "half a line was shipped"
    with open(path, "a") as file:
        file.write(whole[20:] + "\nnot json at all\n\n" + after + "\n")
    wait_until(lambda: receiver.count >= 3)
    shipper.close()
    assert sorted(receiver.lines()) == sorted([whole, "not json at all", after])
    (foreign,) = [labels for labels, _ts, text in receiver.entries if text == "not json at all"]
    assert foreign["level"] == "unknown" and foreign["service"] == "shop"


def test_loki_down_loses_nothing_and_past_the_bound_the_oldest_lines_are_skipped_and_counted(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    receiver.stop()
    shipper = make_shipper(receiver, tmp_path, registry, batch_lines=50)
    append(tmp_path, [line(n) for n in range(100)])
    wait_until(lambda: shipper.spool_batches == 1)  # a push failed: the batch waits
    assert (registry.get_sample_value("loki_shipper_spool_bytes") or 0) > 0
    receiver.start()
    wait_until(lambda: receiver.count >= 100)
    assert seqs(receiver) == list(range(100)) and drops(registry, "spool_full") == 0
    receiver.stop()
    size = len(line(100)) + 1
    shipper.close()
    bounded = make_shipper(receiver, tmp_path, registry, spool_max_bytes=100 * size,
                           batch_lines=50)
    append(tmp_path, [line(n) for n in range(100, 400)])
    wait_until(lambda: drops(registry, "spool_full") == 200, timeout=15)
    receiver.start()
    wait_until(lambda: receiver.count >= 200)
    bounded.close()
    assert seqs(receiver)[100:] == list(range(300, 400)), "the newest lines were kept"


def test_one_of_two_shippers_ships_and_the_other_takes_over_when_it_stops(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    first = make_shipper(receiver, tmp_path, registry)
    second = make_shipper(receiver, tmp_path, CollectorRegistry())
    assert first.leading and not second.leading
    append(tmp_path, [line(n) for n in range(10)])
    wait_until(lambda: receiver.count >= 10)
    first.close()
    append(tmp_path, [line(n) for n in range(10, 20)])
    wait_until(lambda: receiver.count >= 20)
    assert second.leading
    second.close()
    assert seqs(receiver) == list(range(20))


def test_files_removed_by_retention_leave_the_positions(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry)
    old = append(tmp_path, [line(0)], "app_2020-01-01.log")
    append(tmp_path, [line(1)])
    wait_until(lambda: receiver.count >= 2)
    os.remove(old)
    positions = tmp_path / "data" / "positions.json"
    wait_until(lambda: old.name not in json.loads(positions.read_text())["files"])
    shipper.close()


def test_a_file_whose_end_a_power_loss_took_is_read_again_from_its_start(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    # The positions are fsync'd after each push, the files are not: after a power loss a
    # position may lie past the end of its file. Lines written after the restart must not be
    # read from that stale offset (from the middle of one of them, or past some).
    (tmp_path / "logs").mkdir()
    path = append(tmp_path, [line(n) for n in range(3)])
    stat = path.stat()
    Positions(tmp_path / "data" / "positions.json", tmp_path / "logs").save(
        {path.name: Position(stat.st_dev, stat.st_ino, stat.st_size + 700)})
    shipper = make_shipper(receiver, tmp_path, registry)
    append(tmp_path, [line(n) for n in range(3, 13)])  # well past the stale offset
    wait_until(lambda: receiver.count >= 13)
    shipper.close()
    assert seqs(receiver) == list(range(13)) and receiver.errors == []


TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def metadata_by_seq(receiver: LokiReceiver) -> dict[int, dict[str, str] | None]:
    return {json.loads(text)["seq"]: meta for _labels, _ts, text, meta in receiver.values()}


def test_trace_and_span_ids_go_as_structured_metadata_when_the_line_has_them(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    import logging

    shipper = make_shipper(receiver, tmp_path, registry)
    record = logging.LogRecord("shop", logging.INFO, __file__, 1, "paid", None, None)
    record.seq, record.trace_id, record.span_id = 5, TRACE, SPAN
    append(tmp_path, [
        line(0, trace_id=TRACE, span_id=SPAN),
        line(1),  # "trace_id": null
        line(2, trace_id=TRACE),
        line(3, trace_id='a"quoted"id'),  # an escape: the line is parsed
        line(4, trace_id=12345),  # not a string: no metadata, the line keeps it
        FORMATTER.format(record),  # a logging record: trace_id, then span_id, then extras
        line(6, trace_id="x" * 300),  # longer than an id: stays in the line only
        line(7, ctx={"a": 1, "trace_id": "nested"}),  # a nested key is not the line's
    ])
    append(tmp_path, [line(8, trace_id=TRACE, span_id=SPAN)], f"access_{DAY}.log")
    wait_until(lambda: receiver.count >= 9)
    shipper.close()
    assert receiver.errors == []
    assert metadata_by_seq(receiver) == {
        0: {"trace_id": TRACE, "span_id": SPAN}, 1: None, 2: {"trace_id": TRACE},
        3: {"trace_id": 'a"quoted"id'}, 4: None, 5: {"trace_id": TRACE, "span_id": SPAN},
        6: None, 7: None, 8: {"trace_id": TRACE, "span_id": SPAN},
    }
    for labels, _ts, text in receiver.entries:  # ids are never labels; the line keeps them
        assert not {"trace_id", "span_id"} & set(labels)
        assert json.loads(text)["trace_id"] is not None or json.loads(text)["seq"] in (1, 7)


def test_a_loki_refusing_structured_metadata_gets_the_lines_again_without_it(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.allow_structured_metadata = False  # Loki with a schema before v13
    shipper = make_shipper(receiver, tmp_path, registry)
    first = [line(n, trace_id=TRACE) if n % 2 else line(n) for n in range(10)]
    append(tmp_path, first)
    wait_until(lambda: registry.get_sample_value("loki_shipper_lines_sent_total") == 10)
    append(tmp_path, [line(n, trace_id=TRACE, span_id=SPAN) for n in range(10, 15)])
    wait_until(lambda: registry.get_sample_value("loki_shipper_lines_sent_total") == 15)
    shipper.close()
    assert receiver.errors == []
    # Loki kept the 5 lines without ids of the refused push, and drops them when they come
    # again (same labels, timestamp and line): every line is there, none was dropped.
    unique = {(tuple(sorted(labels.items())), ts, text) for labels, ts, text in receiver.entries}
    assert len(unique) == 15 and receiver.count == 20
    assert sorted(seqs(receiver)) == sorted([*range(0, 10, 2), *range(15)])
    assert receiver.metadata == [None] * 20
    assert receiver.refused_metadata == 5, "after one refusal, batches go without metadata"
    assert registry.get_sample_value("loki_shipper_lines_without_metadata_total") == 10
    assert drops(registry, "rejected") == 0
    said = [r for r in caplog.records if "refuses structured metadata" in r.getMessage()]
    assert len(said) == 1 and "disallowed" in said[0].getMessage()


def test_after_a_refusal_a_batch_tries_with_structured_metadata_again(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from exporter.logs import pushing

    receiver.allow_structured_metadata = False
    shipper = make_shipper(receiver, tmp_path, registry)
    append(tmp_path, [line(0, trace_id=TRACE)])
    wait_until(lambda: registry.get_sample_value("loki_shipper_lines_sent_total") == 1)
    assert not shipper.sends_metadata
    receiver.allow_structured_metadata = True  # Loki upgraded to schema v13 meanwhile
    monkeypatch.setattr(pushing, "METADATA_RETRY_SECONDS", 0.0)
    append(tmp_path, [line(1, trace_id=TRACE)])
    wait_until(lambda: receiver.count >= 2)
    shipper.close()
    assert metadata_by_seq(receiver) == {0: None, 1: {"trace_id": TRACE}}
    assert registry.get_sample_value("loki_shipper_lines_without_metadata_total") == 1


def test_the_reader_stops_at_whole_lines_within_its_budget(tmp_path: Path) -> None:
    from exporter.logs.file_reader import DailyFileReader

    (tmp_path / "logs").mkdir()
    path = append(tmp_path, ["a", "bb", "", "dddd", "eeeee"])
    with open(path, "ab") as file:
        file.write(b"no newline yet")
    reader = DailyFileReader(tmp_path / "logs")
    files = reader.files()
    (chunk,) = reader.read(files, {}, max_lines=3, max_bytes=1 << 20)
    assert (chunk.data, chunk.count, chunk.end.offset) == (b"a\nbb\n", 3, 6)
    (rest,) = reader.read(files, {chunk.name: chunk.end}, max_lines=100, max_bytes=1 << 20)
    assert (rest.data, rest.count, rest.end.offset) == (b"dddd\neeeee", 2, 17)
    (small,) = reader.read(files, {}, max_lines=100, max_bytes=5)  # a byte budget: 2 lines
    assert (small.data, small.count) == (b"a\nbb", 2)


@pytest.mark.parametrize("limit", [{"batch_lines": 50}, {"batch_bytes": 4096}])
def test_writes_that_fill_a_batch_wake_the_shipper_before_the_batch_is_due(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry, limit: dict[str, int]
) -> None:
    """Between a batch's start and its due time the shipper sleeps; the writer wakes it when
    what it wrote would fill the batch (by lines, or by bytes), so a busy app's lines are not
    held for `batch_wait` (60 s here)."""
    from exporter.logs import layout
    from exporter.logs.files import DailyFiles

    shipper = make_shipper(receiver, tmp_path, registry, batch_wait=60.0, **limit)
    files = DailyFiles(tmp_path / "logs")
    files.listen(shipper.wake)
    try:
        files.submit(layout.APP, line(0))  # starts a batch that is due in 60 s
        assert files.flush()
        time.sleep(0.3)
        assert receiver.count == 0
        for seq in range(1, 200):
            files.submit(layout.APP, line(seq))
        assert files.flush()
        wait_until(lambda: receiver.count >= 40, timeout=10)
    finally:
        files.stop()
        shipper.close()
    assert receiver.errors == []
    assert seqs(receiver) == list(range(200))
