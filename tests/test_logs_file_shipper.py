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
    assert by_seq[1][0] == {"service": "shop", "env": "test", "level": "error", "region": "eu"}
    assert by_seq[2][0]["service"] == "billing"
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
