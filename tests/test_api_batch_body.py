"""A batch body read entry by entry: the same entries, or the same refusal, however the body is
cut into chunks, and no value scanned once per chunk."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.api.batch_body import BatchBody, BatchBodyError

SIZES = (1, 2, 3, 7, 64, 1 << 20)
NOT_A_BATCH = ('body must be {"entries": [...]}, {"log_entries": [...]} or a JSON array of '
               "entries [entries]")


def _read(body: bytes, size: int) -> tuple[list[Any], bool] | str:
    pieces = iter([body[n:n + size] for n in range(0, len(body), size)])
    reader = BatchBody(lambda: next(pieces, None))
    try:
        return list(reader), reader.in_object
    except BatchBodyError as exc:
        return f"{exc} [{exc.field}]"


@pytest.mark.parametrize(("body", "expected"), [
    (b'[1, 23456, "a", {"x": [1, 2]}, null, true]',
     ([1, 23456, "a", {"x": [1, 2]}, None, True], False)),
    ('{"a": 1, "entries": [{"m": "\u00e9"}, 12345], "b": [1, 2]}'.encode(),
     ([{"m": "\u00e9"}, 12345], True)),
    (b" \n [ ] \n", ([], False)),
    (b'{"entries": []}', ([], True)),
    (b'{"log_entries": [{"message": "m"}]}', ([{"message": "m"}], True)),
])
def test_entries_come_out_whole_whatever_the_chunks(body: bytes, expected: Any) -> None:
    assert {json.dumps(_read(body, size)) for size in SIZES} == {json.dumps(expected)}


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"entries": 5}', NOT_A_BATCH),
    (b"{}", NOT_A_BATCH),
    (b'"s"', NOT_A_BATCH),
    (b"", "body is not valid JSON (JSONDecodeError) []"),
    (b"[", "body is not valid JSON (JSONDecodeError) []"),
    (b"[1,]", "body is not valid JSON (JSONDecodeError) []"),
    (b"[1 2]", "body is not valid JSON (JSONDecodeError) []"),
    (b"[1] x", "body is not valid JSON (JSONDecodeError: extra data) []"),
    (b'{"entries": [], "entries": []}',
     'body has "entries" and "entries": one list of entries per batch []'),
    (b'{"entries": [], "log_entries": []}',
     'body has "entries" and "log_entries": one list of entries per batch []'),
    (b'{"log_entries": 5}', NOT_A_BATCH),
    (b"[" * 100_000, "body is nested too deeply []"),
    (b"\xff[]", "body is not valid JSON (UnicodeDecodeError) []"),
    (b'[{"m": "\xc3', "body is not valid JSON (UnicodeDecodeError) []"),
])
def test_what_is_no_batch_is_refused_the_same_whatever_the_chunks(body: bytes, reason: str
                                                                  ) -> None:
    assert {_read(body, size) for size in SIZES} == {reason}


def test_a_long_value_is_not_scanned_once_per_chunk() -> None:
    body = json.dumps([{"message": "x" * 4_000_000}]).encode()
    pieces = iter([body[n:n + 1024] for n in range(0, len(body), 1024)])
    asked = 0

    def chunks() -> bytes | None:
        nonlocal asked
        asked += 1
        return next(pieces, None)

    scans = 0
    reader = BatchBody(chunks)
    scan = reader._scan

    def counted(text: str, pos: int) -> Any:
        nonlocal scans
        scans += 1
        return scan(text, pos)

    reader._scan = counted  # type: ignore[method-assign]
    assert [len(entry["message"]) for entry in reader] == [4_000_000]
    assert asked > 3900 and scans < 40  # ~log2(4000) scans, not one per 1 KiB chunk
