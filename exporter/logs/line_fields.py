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


class LineFields:
    """Turns raw lines into Loki entries with the labels of `streams` (one shipper thread)."""

    def __init__(self, streams: Streams) -> None:
        self._streams = streams
        self._second: tuple[str, int] = ("", 0)  # the last `ts` second seen, in seconds

    def entry(self, raw: bytes, now_ns: int) -> Entry | None:
        """The entry of one line (None for a blank one). A line that is not a JSON object is
        shipped as it is, at level `unknown` and `now_ns` (or at the level and `ts` it starts
        with, when it is the part of one of ours that a killed writer left)."""
        raw = raw.strip(b"\x00")  # a power loss may leave a run of zeros where lines were
        if not raw.strip():
            return None
        line = raw.decode("utf-8", "replace")
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            # Shipped as it is; at its own time and level when it is the start of one of ours.
            ours = _OURS.match(line)
            stamp = self.ns(ours.group(1)) if ours else None
            labels = self._streams.labels(None, ours.group(2) if ours else UNKNOWN)
            return (labels, now_ns if stamp is None else stamp, line)
        level = doc.get("level")
        labels = self._streams.labels(
            doc.get("service"), level if isinstance(level, str) and level else UNKNOWN)
        stamp = self.ns(doc.get("ts"))
        return (labels, now_ns if stamp is None else stamp, line)

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

