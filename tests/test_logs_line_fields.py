"""The shipper's quick ways of making Loki entries give what reading each line one by one gives:
the whole-chunk match of the usual lines, the hints the file writer leaves for the access lines
it wrote, and the push body written out as text."""

from __future__ import annotations

import gzip
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import pytest

from exporter.config import load_settings
from exporter.logs import line_fields
from exporter.logs.access_line import AccessLine
from exporter.logs.formatter import JsonFormatter
from exporter.logs.line_fields import LineFields
from exporter.logs.loki_config import LokiConfig
from exporter.logs.push import encode_push
from exporter.logs.sinks import LogSinks
from exporter.logs.streams import Streams

# Pieces that break the usual shape somewhere: quotes, escapes, control characters, the keys
# the reading looks for, a lone surrogate (written as "?"), non-ASCII text.
PIECES = ['a', '"', '\\', '\n', '\x01', 'é', '✓', ',"service":"x"', ',"span_id":"y"', '\ud800',
          'null', '}', '{', '","', ' ']


def fields() -> LineFields:
    config = LokiConfig(url="http://loki.invalid", spool_dir=Path("/nonexistent"),
                        service="shop", env="prod")
    return LineFields(Streams(config))


def text(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, n)))


def record_line(formatter: JsonFormatter, message: str, **extra: Any) -> str:
    record = logging.LogRecord("shop.orders", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return formatter.format(record)


def some_line(rnd: random.Random, formatter: JsonFormatter, access: AccessLine) -> str:
    kind = rnd.random()
    if kind < 0.35:
        return record_line(formatter, text(rnd, 6), **rnd.choice([
            {}, {"trace_id": text(rnd, 3)}, {"trace_id": "a" * 300}, {"span_id": "s"},
            {"trace_id": "t", "span_id": 7}, {"service": text(rnd, 3)}, {"order": text(rnd, 3)}]))
    if kind < 0.7:
        return access.line(time.time(), rnd.choice(["info", "warning"]), "GET", "/r/{id}",
                           "/r/" + text(rnd, 4), 200, 1.5, rnd.choice([None, "10.0.0.1"]),
                           rnd.choice(["a" * 32, text(rnd, 3), "", "b" * 257]),
                           rnd.choice(["c" * 16, text(rnd, 2)]))
    usual = record_line(formatter, text(rnd, 4))
    damage = rnd.random()
    if damage < 0.3:  # a line a killed writer cut short
        return usual[:rnd.randint(0, len(usual))]
    if damage < 0.5:
        return usual.replace('"trace_id":null', f'"trace_id":"{text(rnd, 3)}"')
    if damage < 0.7:
        return usual.replace('"env":"prod"', f'"env":"{text(rnd, 2)}"')
    if damage < 0.8:
        return usual.replace('"ts":"20', '"ts":"٢0')  # a digit that is not ASCII
    return text(rnd, 10)


@pytest.mark.parametrize("seed", range(4))
def test_a_chunk_makes_the_entries_its_lines_make_one_by_one(seed: int) -> None:
    rnd = random.Random(seed)
    formatter = JsonFormatter("shop", "prod")
    access = AccessLine(formatter)
    quick = 0
    for _ in range(400):
        lines = [some_line(rnd, formatter, access).encode("utf-8", "surrogatepass")
                 for _ in range(rnd.randint(1, 4))]
        lines = [raw for part in lines for raw in part.split(b"\n")]  # as the reader splits
        if rnd.random() < 0.1:
            lines.append(b"\x00\x00")  # what a power loss may leave
        one_by_one = [made for made in (fields().entry(raw, 123, "app") for raw in lines)
                      if made is not None]
        assert fields().entries(b"\n".join(lines), 123, "app") == one_by_one
        quick += len(line_fields._USUAL.findall(b"\n".join(lines).decode("utf-8", "replace"))
                     ) == len(lines)
    assert quick > 20  # the whole-chunk reading was taken, not only the line-by-line one


def test_the_usual_lines_of_the_formatter_and_the_access_log_are_read_at_once() -> None:
    formatter = JsonFormatter("shop", "prod")
    lines = [record_line(formatter, "paid"), record_line(formatter, "x", trace_id="t1",
                                                         span_id="s1"),
             AccessLine(formatter).line(time.time(), "info", "GET", "/r", "/r", 200, 1.0,
                                        "10.0.0.1", "a" * 32, "b" * 16)]
    assert len(line_fields._USUAL.findall("\n".join(lines))) == 3


def hinted_sinks(tmp_path: Path, service: str) -> LogSinks:
    # A Loki URL nobody answers: the shipper leads (it holds the positions) and takes hints;
    # the test reads them before it would push anything.
    settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data",
                             loki_url="http://127.0.0.1:9", log_stdout=False,
                             service_name=service, loki_batch_wait_seconds=60)
    return LogSinks(settings)


@pytest.mark.parametrize("seed", range(3))
def test_the_hint_of_an_access_line_is_what_reading_the_line_gives(
    tmp_path: Path, seed: int
) -> None:
    rnd = random.Random(seed)
    service = rnd.choice(["shop", "shop-eu.1", "a:b_c"])
    sinks = hinted_sinks(tmp_path, service)
    try:
        assert sinks.shipper is not None and sinks.shipper.hints is not None
        hints = sinks.shipper.hints
        for _ in range(300):
            trace_id = rnd.choice(["4bf92f3577b34da6a3ce929d0e0e4736", "token:s3cretvalue1",
                                   "", "x" * 257, text(rnd, 4), "req-1.2_3"])
            span_id = rnd.choice(["00f067aa0ba902b7", "", "y" * 300])
            item = (time.time() + rnd.random(), "GET", "/r/{id}", "/r/" + text(rnd, 3),
                    rnd.choice([200, 503]), rnd.random() * 2, rnd.choice([None, "10.0.0.1"]),
                    trace_id, span_id, None)
            ((_kinds, line),) = sinks._access_lines(item)
            hint = hints.get(line)
            assert hint is not None
            raw = line.encode("utf-8", "replace")
            want = fields_for(service).entry(raw, 123, "access")
            got = fields_for(service).entries(raw, 123, "access", {line: hint})
            assert got == [want]
            assert "s3cretvalue1" not in json.dumps(hint)
    finally:
        sinks.close()


def fields_for(service: str) -> LineFields:
    config = LokiConfig(url="http://loki.invalid", spool_dir=Path("/nonexistent"),
                        service=service, env="prod")
    return LineFields(Streams(config))


def test_lines_without_a_hint_are_read_and_keep_their_place() -> None:
    formatter = JsonFormatter("shop", "prod")
    access = AccessLine(formatter)
    lines = [access.line(1_765_000_000.0 + n, "info", "GET", "/r", f"/r/{n}", 200, 1.0, None,
                         f"{n:032x}", f"{n:016x}") for n in range(6)]
    raws = [line.encode() for line in lines]
    reader = fields()
    want = [reader.entry(raw, 123, "access") for raw in raws]
    # Lines 1 and 4 were written by another process: no hint for them.
    hints = {line: (entry[1], "info", "shop", entry[3])
             for n, (line, entry) in enumerate(zip(lines, want, strict=True))
             if n not in (1, 4) and entry is not None}
    assert reader.entries(b"\n".join(raws), 123, "access", hints) == want
    assert hints == {}  # taken as they are used


def test_the_push_body_is_what_encoding_the_lists_makes() -> None:
    rnd = random.Random(5)
    labels = [(("level", "info"), ("service", text(rnd, 3))) for _ in range(3)]
    entries = []
    for _ in range(500):
        metadata = rnd.choice([None, {}, {"trace_id": text(rnd, 4)},
                               {"trace_id": text(rnd, 4), "span_id": text(rnd, 3)},
                               {"span_id": text(rnd, 2)}, {text(rnd, 2): text(rnd, 2)}])
        entries.append((rnd.choice(labels), rnd.randint(0, 2 ** 63), text(rnd, 8), metadata))
    streams: dict[Any, list[Any]] = {}
    for stream_labels, ts_ns, line, metadata in entries:
        streams.setdefault(stream_labels, []).append(
            [str(ts_ns), line, metadata] if metadata else [str(ts_ns), line])
    expected = json.dumps(
        {"streams": [{"stream": dict(key), "values": values} for key, values in streams.items()]},
        ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    assert gzip.decompress(encode_push(entries)) == expected


def test_the_request_values_of_an_access_line_are_scrubbed_and_remembered(
    tmp_path: Path
) -> None:
    sinks = hinted_sinks(tmp_path, "shop")
    try:
        for _ in range(2):  # the second time from what was remembered
            item = (time.time(), "GET", "/r/{id}", "/r/token=s3cretvalue1", 200, 0.01,
                    "Bearer abcdefgh12345", "token:s3cretvalue2", "00f067aa0ba902b7", None)
            ((_kinds, line),) = sinks._access_lines(item)
            doc = json.loads(line)
            assert not {"s3cretvalue1", "abcdefgh12345", "s3cretvalue2"} & set(line.split('"'))
            assert "s3cretvalue" not in line and "abcdefgh12345" not in line
            assert doc["span_id"] == "00f067aa0ba902b7"
        assert "/r/token=s3cretvalue1" in sinks._scrubbed
        assert "s3cretvalue1" not in json.dumps(list(sinks._scrubbed.values()))
    finally:
        sinks.close()


def test_the_remembered_scrubbed_texts_are_bounded(tmp_path: Path) -> None:
    from exporter.logs import sinks as sinks_module

    sinks = hinted_sinks(tmp_path, "shop")
    try:
        for n in range(sinks_module._SCRUBBED_TEXTS + 100):
            sinks._access_lines((time.time(), "GET", "/r/{id}", f"/r/{n}", 200, 0.01, None,
                                 "a" * 32, "b" * 16, None))
        long_path = "/r/" + "x" * sinks_module._SCRUBBED_CHARS
        sinks._access_lines((time.time(), "GET", "/r/{id}", long_path, 200, 0.01, None,
                             "a" * 32, "b" * 16, None))
        assert 0 < len(sinks._scrubbed) <= sinks_module._SCRUBBED_TEXTS
        assert long_path not in sinks._scrubbed
    finally:
        sinks.close()


def test_hints_nobody_takes_are_bounded(tmp_path: Path) -> None:
    sinks = hinted_sinks(tmp_path, "shop")
    try:
        assert sinks.shipper is not None and sinks.shipper.hints is not None
        for n in range(line_fields.MAX_HINTS + 500):  # rendered, never written nor read
            sinks._access_lines((time.time(), "GET", "/r/{id}", f"/r/{n}", 200, 0.01, None,
                                 f"{n:032x}", "b" * 16, None))
        assert 0 < len(sinks.shipper.hints) <= line_fields.MAX_HINTS
    finally:
        sinks.close()
