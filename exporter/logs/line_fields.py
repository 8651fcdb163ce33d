"""What the file shipper reads from one line of the daily files: its own timestamp (`ts`), its
level and its service, which make the Loki entry."""

from __future__ import annotations

import calendar
import json
import re
from datetime import datetime, timedelta, timezone

from exporter.logs.streams import Entry, Streams

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
UNKNOWN = "unknown"  # the level label of a line that is not one of our JSON objects
# The start of one of our lines, whole or torn (a writer killed in the middle of a write()).
_OURS = re.compile(r'^\{"ts":"([^"]*)","level":"([a-z]{1,16})"')
_SERVICE = ',"service":"'
_OUR_START = b'{"ts":"'
Fields = tuple["str | None", str, object]  # ts, level, service


class LineFields:
    """Turns raw lines into Loki entries with the labels of `streams` (one shipper thread)."""

    def __init__(self, streams: Streams) -> None:
        self._streams = streams
        self._second: tuple[str, int] = ("", 0)  # the last `ts` second seen, in seconds

    def entry(self, raw: bytes, now_ns: int) -> Entry | None:
        """The entry of one line (None for a blank one). A line that is not a JSON object is
        shipped as it is, at level `unknown` and `now_ns` (or at the level and `ts` it starts
        with, when it is the part of one of ours that a killed writer left)."""
        if not raw.startswith(_OUR_START):
            raw = raw.strip(b"\x00")  # a power loss may leave a run of zeros where lines were
            if not raw.strip():
                return None
        line = raw.decode("utf-8", "replace")
        ts, level, service = _ours(line) or _parsed(line)
        stamp = self.ns(ts)
        return (self._streams.labels(service, level), now_ns if stamp is None else stamp, line)

    def ns(self, text: object) -> int | None:
        """`text` (RFC 3339; ours is `2026-11-23T16:21:58.001Z`) in ns since the epoch."""
        if not isinstance(text, str):
            return None
        if len(text) == 24 and text[19] == "." and text[23] == "Z" and text[20:23].isdigit():
            prefix = text[:19]
            cached = self._second
            if cached[0] != prefix:
                try:
                    seconds = calendar.timegm(datetime.strptime(
                        prefix, "%Y-%m-%dT%H:%M:%S").timetuple())
                except ValueError:
                    return None
                cached = self._second = (prefix, seconds)
            return (cached[1] * 1000 + int(text[20:23])) * 1_000_000
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return (when - _EPOCH) // _MICROSECOND * 1000


def _ours(line: str) -> Fields | None:
    """`ts`, level and service read from where our formatter puts them, without parsing the
    line (parsing was most of the shipper's time): `ts` and `level` first, and `service` as a
    string before any nested object. A quote inside a JSON string is escaped, so the first
    `,"service":"` is the key. None when the line is not in that shape (then it is parsed)."""
    head = _OURS.match(line)
    if head is None:
        return None
    at = line.find(_SERVICE, head.end())
    if at < 0:
        return None
    start = at + len(_SERVICE)
    end = line.find('"', start)
    if end < 0 or "\\" in line[start:end]:  # an escape: let the parser read it
        return None
    return head.group(1), head.group(2), line[start:end]


def _parsed(line: str) -> Fields:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, dict):
        level, ts = doc.get("level"), doc.get("ts")
        return (ts if isinstance(ts, str) else None,
                level if isinstance(level, str) and level else UNKNOWN, doc.get("service"))
    ours = _OURS.match(line)  # what a killed writer left of one of ours
    if ours is not None:
        return ours.group(1), ours.group(2), None
    return None, UNKNOWN, None
