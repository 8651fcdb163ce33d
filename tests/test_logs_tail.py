"""LogTail: the written lines fanned out to bounded, filtered subscriber queues."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.logs import layout
from exporter.logs.files import DailyFiles
from exporter.logs.formatter import JsonFormatter
from exporter.logs.tail import LogTail, TailFilter, TooManySubscribers


def line(message: str, level: str = "INFO", trace_id: str = "t" * 32) -> str:
    return json.dumps({"ts": "2026-11-23T10:00:00.000Z", "level": level, "logger": "app",
                       "message": message, "trace_id": trace_id})


def test_filters_follow_the_logs_api() -> None:
    assert TailFilter().matches("not even json")
    assert TailFilter(level="warning").matches(line("x", "ERROR"))
    assert TailFilter(level="WARNING").matches(line("x", "warning"))
    assert not TailFilter(level="warning").matches(line("x", "INFO"))
    assert TailFilter(trace_id="abc").matches(line("x", trace_id="abc"))
    # The id appears in the message but the record's trace_id differs: no match.
    assert not TailFilter(trace_id="abc").matches(line("abc", trace_id="abd"))
    assert TailFilter(contains="paid").matches(line("order paid"))
    assert not TailFilter(contains="paid").matches(json.dumps({"message": "x", "note": "paid"}))
    assert not TailFilter(level="info").matches("not json")


@pytest.mark.parametrize("text", ['say "quoted" word', "path a\\b", "tab\there", "café"])
def test_contains_finds_text_the_line_holds_escaped(text: str) -> None:
    written = JsonFormatter("svc", "test").render_fields(
        1.7e9, "info", "app", {"message": f"before {text} after"})
    assert TailFilter(contains=text).matches(written)
    assert not TailFilter(contains=text + "!").matches(written)


def test_a_subscriber_holds_at_most_its_bound_and_counts_the_rest(
    registry: CollectorRegistry,
) -> None:
    tail = LogTail(max_lines=10, registry=registry)

    async def scenario() -> tuple[list[str], int, list[str], int]:
        sub = tail.subscribe(layout.APP, TailFilter(), asyncio.get_running_loop())
        writer = threading.Thread(
            target=tail.publish, args=({layout.APP: [line(f"m{i}") for i in range(25)]},)
        )
        writer.start()
        writer.join()
        first = await sub.next_batch()
        tail.publish({layout.APP: [line("after")], layout.ACCESS: [line("access only")]})
        second = await sub.next_batch()
        sub.close()
        return first[0], first[1], second[0], second[1]

    lines, skipped, later, later_skipped = asyncio.run(scenario())
    assert [json.loads(x)["message"] for x in lines] == [f"m{i}" for i in range(10)]
    assert skipped == 15
    assert [json.loads(x)["message"] for x in later] == ["after"]
    assert later_skipped == 0
    assert registry.get_sample_value("log_tail_skipped_lines_total") == 15
    assert registry.get_sample_value("log_tail_queued_lines_peak") == 10
    assert registry.get_sample_value("log_tail_clients") == 0


def test_each_subscriber_gets_its_own_stream_and_filter(registry: CollectorRegistry) -> None:
    tail = LogTail(registry=registry)

    async def scenario() -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()
        errors = tail.subscribe(layout.APP, TailFilter(level="error"), loop)
        access = tail.subscribe(layout.ACCESS, TailFilter(), loop)
        assert registry.get_sample_value("log_tail_clients") == 2
        tail.publish({layout.APP: [line("fine"), line("broken", "ERROR")],
                      layout.ACCESS: [line("GET /")]})
        return (await errors.next_batch())[0], (await access.next_batch())[0]

    errors, access = asyncio.run(scenario())
    assert [json.loads(x)["message"] for x in errors] == ["broken"]
    assert [json.loads(x)["message"] for x in access] == ["GET /"]


def test_the_number_of_clients_is_bounded(registry: CollectorRegistry) -> None:
    tail = LogTail(max_subscribers=1, registry=registry)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        first = tail.subscribe(layout.APP, TailFilter(), loop)
        with pytest.raises(TooManySubscribers):
            tail.subscribe(layout.APP, TailFilter(), loop)
        first.close()
        first.close()  # idempotent
        tail.subscribe(layout.APP, TailFilter(), loop).close()

    asyncio.run(scenario())


def test_a_newer_tail_replaces_the_older_ones_metrics(registry: CollectorRegistry) -> None:
    LogTail(registry=registry)
    newer = LogTail(max_lines=5, registry=registry)
    newer.count(3, 7)
    assert registry.get_sample_value("log_tail_skipped_lines_total") == 7


def test_daily_files_hand_each_written_batch_to_listeners(tmp_path: Path) -> None:
    daily = DailyFiles(tmp_path)
    seen: list[dict[int, list[str]]] = []

    def broken(_: dict[int, list[str]]) -> None:
        raise RuntimeError("a listener bug")

    daily.listen(broken)
    daily.listen(lambda batch: seen.append({k: list(v) for k, v in batch.items()}))
    try:
        daily.submit(layout.APP | layout.ERROR, "one")
        daily.submit(layout.ACCESS, "two")
        assert daily.flush()
    finally:
        daily.stop()
    merged: dict[int, list[str]] = {}
    for batch in seen:
        for kind, lines in batch.items():
            merged.setdefault(kind, []).extend(lines)
    assert merged == {layout.APP: ["one"], layout.ERROR: ["one"], layout.ACCESS: ["two"]}
    # The broken listener lost nothing from the files.
    assert daily.path("app").read_text() == "one\n"
