"""What the file shipper reads from one line of the daily files: its own timestamp (`ts`), its
level and its service, which make the Loki entry, and its trace and span ids, which go with it
as structured metadata."""

from __future__ import annotations

import calendar
import json
import re
from datetime import datetime, timedelta, timezone

from exporter.logs.push import Metadata
from exporter.logs.streams import Entry, Streams

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
UNKNOWN = "unknown"  # the level label of a line that is not one of our JSON objects
# The start of one of our lines, whole or torn (a writer killed in the middle of a write()).
_OURS = re.compile(r'^\{"ts":"([^"]*)","level":"([a-z]{1,16})"')
_SERVICE = ',"service":"'
_OUR_START = b'{"ts":"'
Fields = tuple["str | None", str, object, Metadata]  # ts, level, service, metadata
# What the writer of a line knows of it: ns timestamp, level, service, metadata, as reading the
# line would give them. The file writer leaves one per access line for the shipper of its own
# process (`FileShipper.hints`, by the line's text), which then need not read the line.
Hint = tuple[int, str, str, Metadata]
Hints = dict[str, Hint]
MAX_HINTS = 4_000  # about 2 MB at most; a shipper that falls behind reads the rest
# Structured metadata, as Promtail and Alloy send it (promtail/, alloy/): the line's own
# `trace_id` and `span_id` (`_pair`). Loki indexes none of it: `{...} | trace_id="<id>"` finds
# a line without parsing it.
MAX_ID_CHARS = 256  # a longer "id" (a caller's extra=) stays in the line only
_TRACE = ',"trace_id":'
_ENV = ',"env":"'
# The ids as every writer of the daily files puts them: strings without escapes (or null),
# `span_id` right after `trace_id`; one regex match, in C (str.find and slices cost more).
_ID = r'(?:"([^"\\]{1,' + str(MAX_ID_CHARS) + r'})"|null)(?=[,}])'
_IDS = re.compile(r',"trace_id":' + _ID + r'(?:,"span_id":' + _ID + ")?")
_PARSE = object()  # the fast reading cannot tell: parse the line
# The usual line, whole, as the formatter and the access log write it: `ts` to the
# millisecond, level, logger, message, service, env, then the ids (`span_id` only after
# `trace_id`), then anything. Matched over a whole chunk at once (`LineFields.entries`): one
# call in C instead of a handful per line. Each group takes only what `entry` would read the
# same way, so a line matched here makes the entry `entry` makes; any other line (escapes in
# service or env, ids of another shape, an ingested entry's own order, a torn line) is left to
# `entry`.
_STRING = r'"[^"\\\n]*(?:\\[^\n][^"\\\n]*)*"'  # a JSON string, escapes and all
_USUAL = re.compile(
    r'^({"ts":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z","level":"([a-z]{1,16})"'
    r',"logger":' + _STRING + r',"message":' + _STRING
    + r',"service":"([^"\\\n]+)","env":"[^"\\\n]*","trace_id":' + _ID
    + r'(?:,"span_id":' + _ID + r')?(?!,"span_id":)[^\n]*)$', re.MULTILINE)


class LineFields:
    """Turns raw lines into Loki entries with the labels of `streams` (one shipper thread)."""

    def __init__(self, streams: Streams) -> None:
        self._streams = streams
        self._second: tuple[str, int] = ("", 0)  # the last `ts` second seen, in seconds

    def entry(self, raw: bytes, now_ns: int, kind: str = "app") -> Entry | None:
        """The entry of one line of a `kind` file (None for a blank one). A line that is not a
        JSON object is shipped as it is, at level `unknown` and `now_ns` (or at the level and
        `ts` it starts with, when it is the part of one of ours that a killed writer left)."""
        if not raw.startswith(_OUR_START):
            raw = raw.strip(b"\x00")  # a power loss may leave a run of zeros where lines were
            if not raw.strip():
                return None
        line = raw.decode("utf-8", "replace")
        ts, level, service, metadata = _ours(line) or _parsed(line)
        stamp = self.ns(ts)
        return (self._streams.labels(service, level, kind), now_ns if stamp is None else stamp,
                line, metadata)

    def entries(
        self, data: bytes, now_ns: int, kind: str = "app", hints: Hints | None = None,
    ) -> list[Entry]:
        """The entries of the lines of `data` (newline-separated, read from a `kind` file), as
        `entry` makes them one by one: from `hints` (taken out of it) for the access lines this
        process wrote, else all at once when every line is a usual one (`_USUAL`)."""
        text = data.decode("utf-8", "replace")
        if hints and kind == "access":
            made = self._hinted(text.split("\n"), data, now_ns, kind, hints)
        else:
            made = self._read(text, data, now_ns, kind)
        return [entry for entry in made if entry is not None]

    def _read(self, text: str, data: bytes, now_ns: int, kind: str) -> list[Entry | None]:
        """The entry of each line of `data` (`text`: it decoded), None for a blank one."""
        found = _USUAL.findall(text)
        if len(found) != data.count(b"\n") + 1:  # some other line: one by one
            return [self.entry(raw, now_ns, kind) for raw in data.split(b"\n")]
        labels = self._streams.labels
        seconds = self._seconds
        out: list[Entry | None] = []
        for line, second, millis, level, service, trace, span in found:
            stamp = seconds(second)
            out.append((
                labels(service, level, kind),
                now_ns if stamp is None else (stamp * 1000 + int(millis)) * 1_000_000,
                line,
                _pair(trace or None, span or None),  # findall gives "" for a group not taken
            ))
        return out

    def _hinted(
        self, texts: list[str], data: bytes, now_ns: int, kind: str, hints: Hints,
    ) -> list[Entry | None]:
        labels = self._streams.labels
        take = hints.pop
        out: list[Entry | None] = []
        missed: list[int] = []  # where the lines without a hint go (another process's)
        for text in texts:
            hint = take(text, None)
            if hint is None:
                missed.append(len(out))
                out.append(None)
            else:
                out.append((labels(hint[2], hint[1], kind), hint[0], text, hint[3]))
        if missed:
            lines = data.split(b"\n")
            made = self._read("\n".join([texts[at] for at in missed]),
                              b"\n".join([lines[at] for at in missed]), now_ns, kind)
            for at, entry in zip(missed, made, strict=True):
                out[at] = entry
        return out

    def _seconds(self, prefix: str) -> int | None:
        """`prefix` (`2026-11-23T16:21:58`, UTC) in seconds since the epoch; None if no date."""
        cached = self._second
        if cached[0] != prefix:
            try:
                seconds = calendar.timegm(datetime.strptime(
                    prefix, "%Y-%m-%dT%H:%M:%S").timetuple())
            except ValueError:
                return None
            cached = self._second = (prefix, seconds)
        return cached[1]

    def ns(self, text: object) -> int | None:
        """`text` (RFC 3339; ours is `2026-11-23T16:21:58.001Z`) in ns since the epoch."""
        if not isinstance(text, str):
            return None
        if len(text) == 24 and text[19] == "." and text[23] == "Z" and text[20:23].isdigit():
            seconds = self._seconds(text[:19])
            return None if seconds is None else (seconds * 1000 + int(text[20:23])) * 1_000_000
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return (when - _EPOCH) // _MICROSECOND * 1000


def metadata_from(trace_id: str, span_id: str) -> Metadata:
    """The structured metadata of a line that holds these ids as JSON strings (what reading the
    line gives: an empty id, or one longer than `MAX_ID_CHARS`, stays in the line only)."""
    return _pair(_id(trace_id), _id(span_id))


def metadata_of(line: str) -> Metadata:
    """The structured metadata of one formatted line (see `_ours`; other lines are parsed)."""
    return (_ours(line) or _parsed(line))[3]


def _ours(line: str) -> Fields | None:
    """`ts`, level, service and the ids read from where our formatter puts them, without
    parsing the line (parsing was most of the shipper's time): `ts` and `level` first, then
    `service`, `trace_id` and `span_id` as strings before any nested object (every writer of
    the daily files puts them there; `span_id` right after `trace_id`). A quote inside a JSON
    string is escaped, so the first `,"service":"` is the key. None when the line is not in
    that shape (then it is parsed)."""
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
    # Where the formatter and the ingestion API put the ids: right after `service` (and `env`).
    at = end + 1
    if line.startswith(_ENV, at):
        at = line.find('"', at + len(_ENV)) + 1
    found = _IDS.match(line, at)
    metadata = _ids(line, found) if found is not None else _metadata(line, head.end())
    if metadata is _PARSE:
        return None
    return head.group(1), head.group(2), line[start:end], metadata  # type: ignore[return-value]


def _metadata(line: str, start: int) -> Metadata | object:
    """`trace_id` and `span_id` (right after it) of one of our lines, from `start`; None when
    it has neither, `_PARSE` when a value holds an escape or is not a string or null, or when
    an object or array comes first (the key found may be one of its own)."""
    found = _IDS.search(line, start)
    if found is None:  # no such key, or a value the pattern does not take: parse to be sure
        return None if line.find(_TRACE, start) < 0 else _PARSE
    at = found.start()
    if line.find('":{', start, at) >= 0 or line.find('":[', start, at) >= 0:
        return _PARSE
    return _ids(line, found)


def _ids(line: str, found: re.Match[str]) -> Metadata | object:
    """The metadata of an `_IDS` match."""
    trace, span = found.groups()
    if span is None and line.startswith(',"span_id":', found.end()):
        return _PARSE  # one the pattern does not take
    return _pair(trace, span)


def _pair(trace: str | None, span: str | None) -> Metadata:
    """The metadata of a line with these ids (None: the line has none, or not as an id)."""
    if trace is None:
        return None if span is None else {"span_id": span}
    return {"trace_id": trace} if span is None else {"trace_id": trace, "span_id": span}


def _id(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS else None


def _parsed(line: str) -> Fields:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, dict):
        level, ts = doc.get("level"), doc.get("ts")
        return (ts if isinstance(ts, str) else None,
                level if isinstance(level, str) and level else UNKNOWN, doc.get("service"),
                _pair(_id(doc.get("trace_id")), _id(doc.get("span_id"))))
    ours = _OURS.match(line)  # what a killed writer left of one of ours
    if ours is not None:
        return ours.group(1), ours.group(2), None, None
    return None, UNKNOWN, None, None
