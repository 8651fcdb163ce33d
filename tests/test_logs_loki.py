"""LokiShipper against a strict in-test Loki receiver: format, retries, spool, no loss."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.logs.formatter import JsonFormatter
from exporter.logs.loki import LokiShipper
from exporter.logs.loki_config import LokiConfig
from tests.conftest import free_port
from tests.loki_receiver import LokiReceiver

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def receiver() -> Iterator[LokiReceiver]:
    rx = LokiReceiver(free_port()).start()
    yield rx
    rx.stop()


def make_shipper(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry, **options: object
) -> LokiShipper:
    config = LokiConfig(url=receiver.url, spool_dir=tmp_path / "spool", service="shop",
                        env="test", batch_wait=0.1, backoff_base=0.05, backoff_max=0.2)
    for name, value in options.items():
        setattr(config, name, value)
    shipper = LokiShipper(config, registry)
    shipper.setFormatter(JsonFormatter("shop", "test"))
    return shipper


def make_logger(shipper: LokiShipper, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers = [shipper]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def sequence_numbers(receiver: LokiReceiver) -> list[int]:
    return [json.loads(line)["seq"] for line in receiver.lines()]


def drops(registry: CollectorRegistry, reason: str) -> float | None:
    return registry.get_sample_value("loki_shipper_lines_dropped_total", {"reason": reason})


def assert_streams_in_order(receiver: LokiReceiver) -> None:
    by_stream: dict[tuple[tuple[str, str], ...], list[tuple[int, int]]] = {}
    for labels, ts, line in receiver.entries:
        key = tuple(sorted(labels.items()))
        by_stream.setdefault(key, []).append((ts, json.loads(line)["seq"]))
    for values in by_stream.values():
        assert values == sorted(values), "a stream arrived out of order"


def test_push_body_labels_and_headers_follow_the_loki_api(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry, tenant="team-a",
                           static_labels={"region": "eu"}, bearer_token="s3cr3t-token")
    logger = make_logger(shipper, "test.format")
    logger.info("hello %s", "world", extra={"seq": 0})
    logger.error("boom", extra={"seq": 1})
    shipper.close()
    assert receiver.errors == []
    assert receiver.count == 2
    labels = [entry[0] for entry in receiver.entries]
    assert labels[0] == {"service": "shop", "env": "test", "level": "info", "kind": "app",
                         "region": "eu"}
    assert labels[1]["level"] == "error"
    line = json.loads(receiver.entries[0][2])
    assert line["message"] == "hello world" and "trace_id" in line  # trace id stays in the line
    assert abs(receiver.entries[0][1] - time.time_ns()) < 60 * 10**9
    headers = receiver.requests[0]
    assert headers["x-scope-orgid"] == "team-a"
    assert headers["authorization"] == "Bearer s3cr3t-token"
    assert registry.get_sample_value("loki_shipper_lines_sent_total") == 2


TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_a_records_trace_and_span_ids_go_as_structured_metadata(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry)
    logger = make_logger(shipper, "test.metadata")
    logger.info("in a request", extra={"seq": 0, "trace_id": TRACE, "span_id": SPAN})
    logger.info("outside any request", extra={"seq": 1})
    shipper.enqueue_line(time.time(), "info", json.dumps({"seq": 2, "trace_id": TRACE}),
                         kind="access")
    shipper.close()
    assert receiver.errors == []
    assert receiver.metadata == [{"trace_id": TRACE, "span_id": SPAN}, None, {"trace_id": TRACE}]
    assert [labels["kind"] for labels, _ts, _line in receiver.entries] == ["app", "app", "access"]


def test_spooled_batches_reach_a_loki_refusing_structured_metadata_without_it(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.stop()
    shipper = make_shipper(receiver, tmp_path, registry, close_timeout=0.2, batch_lines=100)
    logger = make_logger(shipper, "test.spooled")
    for seq in range(300):
        logger.info("record", extra={"seq": seq, "trace_id": TRACE})
    shipper.close()
    assert list((tmp_path / "spool").glob("*/*.gz")), "written with metadata, while Loki was down"
    receiver.allow_structured_metadata = False  # it comes back with a schema before v13
    receiver.start()
    second_registry = CollectorRegistry()
    second = make_shipper(receiver, tmp_path, second_registry)
    make_logger(second, "test.spooled").info("after", extra={"seq": 300, "trace_id": TRACE})
    assert receiver.wait_for(301, timeout=10)
    second.close()
    assert sequence_numbers(receiver) == list(range(301)) and receiver.errors == []
    assert receiver.metadata == [None] * 301
    assert second_registry.get_sample_value("loki_shipper_lines_without_metadata_total") == 301
    assert drops(second_registry, "rejected") == 0
    assert sum("refuses structured metadata" in r.getMessage() for r in caplog.records) == 1


def test_basic_auth_is_sent_when_configured(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry, username="u", password="p")
    make_logger(shipper, "test.basic").info("x", extra={"seq": 0})
    shipper.close()
    assert receiver.requests[0]["authorization"] == "Basic dTpw"


def test_429_with_retry_after_is_honoured_then_delivered(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    receiver.mode, receiver.retry_after = "429", "1"
    shipper = make_shipper(receiver, tmp_path, registry)
    logger = make_logger(shipper, "test.429")
    for seq in range(10):
        logger.info("line", extra={"seq": seq})
    deadline = time.monotonic() + 5
    while registry.get_sample_value("loki_shipper_retries_total") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    refused_at = time.monotonic()
    receiver.mode = "up"
    assert receiver.wait_for(10, timeout=5)
    # With backoff alone (max 0.2 s) it would come back much sooner than Retry-After's 1 s.
    assert time.monotonic() - refused_at >= 0.8
    assert sequence_numbers(receiver) == list(range(10))
    shipper.close()


def test_500_is_retried_and_other_4xx_dropped_with_a_count(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    receiver.mode = "500"
    shipper = make_shipper(receiver, tmp_path, registry)
    logger = make_logger(shipper, "test.500")
    for seq in range(5):
        logger.info("line", extra={"seq": seq})
    time.sleep(0.5)
    assert (registry.get_sample_value("loki_shipper_retries_total") or 0) >= 2
    receiver.mode = "up"
    assert receiver.wait_for(5, timeout=5)
    # A 400 (here: a label Loki would refuse) is dropped once, counted, not retried.
    receiver_errors_before = len(receiver.errors)
    shipper.config.static_labels = {}
    shipper._streams.forget()
    shipper.config.env = ""  # an empty label value is invalid: the receiver answers 400
    logger.info("refused", extra={"seq": 99})
    shipper.close()
    assert len(receiver.errors) == receiver_errors_before + 1
    assert drops(registry, "rejected") == 1


def test_twenty_thousand_lines_survive_an_outage_in_order(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry)
    logger = make_logger(shipper, "test.outage")
    levels = (logger.info, logger.warning, logger.error)
    for seq in range(20_000):
        if seq == 5_000:
            receiver.stop()
        if seq == 15_000:
            time.sleep(0.3)  # let the worker hit the closed port and spool
            assert shipper.spool_bytes > 0
            receiver.start()
        levels[seq % 3]("record", extra={"seq": seq})
    assert receiver.wait_for(20_000, timeout=30)
    shipper.close()
    seqs = sequence_numbers(receiver)
    assert len(seqs) == 20_000 and set(seqs) == set(range(20_000))
    assert_streams_in_order(receiver)
    assert receiver.errors == []
    assert registry.get_sample_value("loki_shipper_lines_sent_total") == 20_000
    assert registry.get_sample_value("loki_shipper_spool_bytes") == 0


def test_close_spools_what_it_cannot_send_and_the_next_start_replays_it(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    receiver.stop()
    shipper = make_shipper(receiver, tmp_path, registry, close_timeout=0.5)
    logger = make_logger(shipper, "test.close")
    for seq in range(3_000):
        logger.info("record", extra={"seq": seq})
    started = time.monotonic()
    shipper.close()
    assert time.monotonic() - started < 3
    assert list((tmp_path / "spool").glob("*/*.gz"))
    receiver.start()
    second = make_shipper(receiver, tmp_path, CollectorRegistry())
    make_logger(second, "test.close").info("after restart", extra={"seq": 3_000})
    assert receiver.wait_for(3_001, timeout=10)
    second.close()
    assert sequence_numbers(receiver) == list(range(3_001))


def test_a_full_spool_drops_the_oldest_batches_and_counts_them(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    receiver.stop()
    shipper = make_shipper(receiver, tmp_path, registry, batch_lines=100,
                           spool_max_bytes=6_000, close_timeout=0.2)
    logger = make_logger(shipper, "test.full")
    for seq in range(2_000):
        logger.info("record %d with some padding to make batches bigger", seq, extra={"seq": seq})
    shipper.close()
    dropped = drops(registry, "spool_full")
    assert dropped is not None and dropped > 0
    assert shipper.spool_bytes <= 6_000
    receiver.start()
    second = make_shipper(receiver, tmp_path, CollectorRegistry())
    assert receiver.wait_for(2_000 - int(dropped), timeout=10)
    second.close()
    seqs = sequence_numbers(receiver)
    assert len(seqs) == 2_000 - dropped
    assert seqs == list(range(2_000 - len(seqs), 2_000)), "the newest lines are the ones kept"


def test_a_process_that_exits_without_close_loses_nothing(
    receiver: LokiReceiver, tmp_path: Path
) -> None:
    script = textwrap.dedent(f"""
        import logging
        from pathlib import Path
        from exporter.logs.formatter import JsonFormatter
        from exporter.logs.loki import LokiShipper
        from exporter.logs.loki_config import LokiConfig
        shipper = LokiShipper(LokiConfig(url={receiver.url!r}, spool_dir=Path({str(tmp_path)!r})))
        shipper.setFormatter(JsonFormatter())
        log = logging.getLogger("burst")
        log.addHandler(shipper)
        log.setLevel(logging.INFO)
        for seq in range(20_000):
            log.info("record", extra={{"seq": seq}})
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert receiver.wait_for(20_000, timeout=5)
    assert sorted(sequence_numbers(receiver)) == list(range(20_000))


def test_two_processes_sharing_a_spool_directory_take_separate_slots(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    first = make_shipper(receiver, tmp_path, registry)
    second = make_shipper(receiver, tmp_path, CollectorRegistry())
    assert first._spool.directory != second._spool.directory
    first.close()
    second.close()


def test_spooled_bodies_are_valid_gzip_push_bodies(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    receiver.stop()
    shipper = make_shipper(receiver, tmp_path, registry, close_timeout=0.1)
    make_logger(shipper, "test.body").info("spooled", extra={"seq": 0})
    shipper.close()
    (batch,) = (tmp_path / "spool").glob("*/*.gz")
    body = json.loads(gzip.decompress(batch.read_bytes()))
    assert body["streams"][0]["stream"]["service"] == "shop"
    assert os.path.basename(batch).endswith("-1.gz")  # the line count is in the name


def test_a_slow_receiver_never_blocks_the_caller_and_loses_nothing(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    receiver.delay = 1.5
    shipper = make_shipper(receiver, tmp_path, registry, push_timeout=0.3, batch_lines=100)
    logger = make_logger(shipper, "test.slow")
    for seq in range(3_000):
        logger.info("record", extra={"seq": seq})
    # Every record was handed over while the first push was still waiting on the receiver.
    assert receiver.count == 0
    time.sleep(0.5)
    receiver.delay = 0.0
    deadline = time.monotonic() + 15
    while set(sequence_numbers(receiver)) != set(range(3_000)):
        assert time.monotonic() < deadline, "lines missing after the receiver sped up"
        time.sleep(0.05)
    shipper.close()
    # A push that timed out may still have landed: delivery is at least once (Loki drops exact
    # duplicates), never less.
    assert (registry.get_sample_value("loki_shipper_retries_total") or 0) >= 1


def test_a_full_queue_drops_new_lines_counts_them_and_never_blocks(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    receiver.delay = 2.0  # the worker sits in its first push while the caller logs
    shipper = make_shipper(receiver, tmp_path, registry, queue_lines=100, batch_lines=10,
                           batch_wait=0.01, push_timeout=5.0)
    logger = make_logger(shipper, "test.full")
    logger.info("first", extra={"seq": -1})
    deadline = time.monotonic() + 5
    while shipper.queue_lines:  # the worker took the first line and is pushing it
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.05)
    for seq in range(1_000):
        logger.info("record", extra={"seq": seq})
    assert receiver.count == 0, "the caller waited for the push to finish"
    assert shipper.queue_lines == 100
    dropped = drops(registry, "queue_full")
    assert dropped == 900
    receiver.delay = 0.0
    shipper.close()
    # What was queued is delivered, oldest first: the first line, then seq 0..99.
    assert sequence_numbers(receiver)[:101] == [-1, *range(100)]
    assert receiver.count == 101


def test_a_lone_surrogate_is_shipped_replaced_and_the_worker_lives_on(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry)
    logger = make_logger(shipper, "test.surrogate")
    name = os.fsdecode(b"report-\xff.csv")  # surrogateescape: '\udcff'
    logger.info("cannot open %s", name, extra={"seq": 0, "note": "a\ud800b"})
    logger.info("after", extra={"seq": 1})
    assert receiver.wait_for(2, timeout=5), "the worker died on the surrogate"
    first = json.loads(receiver.lines()[0])
    assert first["message"] == "cannot open report-?.csv" and first["note"] == "a?b"
    assert shipper.worker_alive and shipper.worker_errors == 0
    shipper.close()
    assert receiver.errors == []


class FailingOnce(LokiShipper):
    """A shipper whose first batch fails inside the worker, as an unforeseen bug would."""

    failures = 1
    error: type[BaseException] = RuntimeError

    def _ship(self, batch: list[Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise self.error("unforeseen")
        super()._ship(batch)


def test_a_failure_in_the_worker_is_counted_logged_and_survived(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = LokiConfig(url=receiver.url, spool_dir=tmp_path / "spool", batch_wait=0.05)
    shipper = FailingOnce(config, registry)
    shipper.setFormatter(JsonFormatter())
    logger = make_logger(shipper, "test.failing")
    with caplog.at_level(logging.ERROR, "exporter.logs.loki"):
        logger.info("lost", extra={"seq": 0})
        deadline = time.monotonic() + 5
        while "Loki shipper worker failed" not in caplog.text:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert shipper.worker_errors == 1 and shipper.worker_failing
    assert shipper.last_worker_error == "RuntimeError: unforeseen"
    assert drops(registry, "failed") == 1
    logger.info("kept", extra={"seq": 1})
    assert receiver.wait_for(1, timeout=5)
    assert sequence_numbers(receiver) == [1]
    # The receiver counts the line before the shipper has read its answer: wait for that.
    deadline = time.monotonic() + 5
    while shipper.worker_failing:
        assert time.monotonic() < deadline, "a successful push did not clear the failure"
        time.sleep(0.01)
    assert shipper.worker_alive
    shipper.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_lines_a_dead_worker_cannot_take_are_counted_at_close(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    config = LokiConfig(url=receiver.url, spool_dir=tmp_path / "spool", batch_wait=0.05)
    shipper = FailingOnce(config, registry)
    shipper.error = SystemExit  # ends the thread: the guard only catches Exception
    shipper.setFormatter(JsonFormatter())
    logger = make_logger(shipper, "test.dead")
    logger.info("kills it", extra={"seq": 0})
    deadline = time.monotonic() + 5
    while shipper.worker_alive:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for seq in range(1, 6):
        logger.info("stranded", extra={"seq": seq})
    shipper.close()
    assert drops(registry, "closed") == 5


def test_close_keeps_its_deadline_with_a_long_push_in_flight(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    receiver.delay = 30.0  # accepts the push and never answers within the push timeout
    shipper = make_shipper(receiver, tmp_path, registry, push_timeout=30.0, close_timeout=1.0,
                           batch_lines=100)
    logger = make_logger(shipper, "test.inflight")
    for seq in range(1_000):
        logger.info("record", extra={"seq": seq})
    deadline = time.monotonic() + 5
    while shipper.queue_lines > 900:  # the worker took a batch of 100 and is pushing it
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    started = time.monotonic()
    shipper.close()
    assert time.monotonic() - started < 4, "close() waited for the push timeout"
    assert not shipper.worker_alive
    spooled = sum(int(path.stem.split("-")[1].split(".")[0])
                  for path in (tmp_path / "spool").glob("*/*.gz"))
    assert spooled == 1_000, "every line is spooled for the next start"
    assert drops(registry, "closed") == 0


def test_a_service_of_any_type_in_extra_becomes_a_text_label_and_loses_no_line(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    shipper = make_shipper(receiver, tmp_path, registry)
    logger = make_logger(shipper, "test.service")
    logger.info("int", extra={"seq": 0, "service": 123})
    logger.info("dict", extra={"seq": 1, "service": {"name": "billing"}})
    logger.info("empty", extra={"seq": 2, "service": ""})
    assert receiver.wait_for(3, timeout=5)
    shipper.close()
    assert receiver.errors == []
    services = [labels["service"] for labels, _ts, _line in receiver.entries]
    assert services == ["123", "{'name': 'billing'}", "shop"]
    assert [json.loads(line)["service"] for line in receiver.lines()] == services
    assert drops(registry, "rejected") == 0


def test_distinct_services_are_bounded_and_the_line_keeps_the_callers_name(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    from exporter.logs.streams import MAX_SERVICES

    shipper = make_shipper(receiver, tmp_path, registry)
    logger = make_logger(shipper, "test.cardinality")
    for seq in range(3 * MAX_SERVICES):
        logger.info("from a caller", extra={"seq": seq, "service": f"svc-{seq}"})
    assert receiver.wait_for(3 * MAX_SERVICES, timeout=10)
    shipper.close()
    streams = {labels["service"] for labels, _ts, _line in receiver.entries}
    assert len(streams) == MAX_SERVICES and "shop" in streams  # the configured one is counted
    last = json.loads(receiver.lines()[-1])
    labels = receiver.entries[-1][0]
    assert labels["service"] == "shop" and last["service"] == f"svc-{3 * MAX_SERVICES - 1}"


def test_an_idle_shipper_replays_the_slots_other_processes_left(
    receiver: LokiReceiver, tmp_path: Path, registry: CollectorRegistry
) -> None:
    receiver.stop()
    # Two workers while Loki is down; the second one's slot is never claimed again.
    first = make_shipper(receiver, tmp_path, registry, close_timeout=0.1)
    second = make_shipper(receiver, tmp_path, CollectorRegistry(), close_timeout=0.1)
    make_logger(second, "test.left").info("left behind", extra={"seq": 0})
    make_logger(second, "test.left").info("left behind", extra={"seq": 1})
    second.close()
    first.close()
    assert list((tmp_path / "spool" / "1").glob("*.gz"))
    alone = make_shipper(receiver, tmp_path, CollectorRegistry())
    assert alone._spool.directory.name == "0"
    from exporter.logs.shipper_health import shipper_health

    health = shipper_health(alone)
    assert health["spool_batches"] >= 1 and health["spool_bytes"] > 0  # every slot counts
    assert health["status"] == "degraded"
    receiver.start()
    assert receiver.wait_for(2, timeout=5), "the abandoned slot was never replayed"
    assert sequence_numbers(receiver) == [0, 1]
    # A batch leaves the spool once the shipper has read Loki's answer, just after the count.
    deadline = time.monotonic() + 5
    while shipper_health(alone)["spool_batches"]:
        assert time.monotonic() < deadline, "replayed batches stayed in the spool"
        time.sleep(0.01)
    assert not list((tmp_path / "spool" / "1").glob("*.gz"))
    alone.close()
