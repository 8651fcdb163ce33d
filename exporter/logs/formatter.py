"""One JSON object per log record, with the trace id, and secrets replaced by `[redacted]`."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Iterable
from typing import Any

from exporter.config import DEFAULT_REDACT_KEYS
from exporter.errors.scrub import Scrubber, safe_repr, safe_str
from exporter.http.trace import current_trace

REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "_exporter_json",
    "color_message",  # uvicorn's copy of the message with terminal colour codes
}


class Redactor(Scrubber):
    """The log lines' scrubber: the values of keys naming a secret become `[redacted]` at any
    depth, and free text is scrubbed, for the built-in secret names (those of the error store)
    and the configured ones, which add to them."""

    def __init__(self, keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        super().__init__(REDACTED, keys)


_default = Redactor()


def scrub_text(text: str) -> str:
    """`text` with URL credentials, Bearer/Basic/Token credentials, JWTs, AWS access key ids,
    PEM private keys and secret `name=value` pairs (of the built-in names) redacted."""
    return _default.text(text)


# allow_nan=False: a NaN that got past the redactor raises, and the line is rebuilt through it.
_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=safe_repr, allow_nan=False
).encode


def as_in_line(text: str) -> str:
    """`text` as it appears inside a string of one of our JSON lines (quotes, backslashes and
    control characters escaped, other characters as they are): what a substring search of the
    raw line must look for."""
    return _dumps(text)[1:-1]


_SCALARS = frozenset({str, int, float, bool, type(None)})


# What a record's line is made of, as it was when the record was logged: (created, levelname,
# logger, message, trace_id, span_id, extras). Plain tuples only, not the record nor dicts:
# see DailyFiles.submit_deferred. `extras` is None or a tuple of (key, value) pairs, where a flat
# dict value is a tuple of its pairs (a user's tuple never gets here: it is not a scalar).
Snapshot = tuple[float, str, str, str, "str | None", "str | None", "tuple[Any, ...] | None"]


def _message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-args: keep the template and the arguments
        return f"{safe_repr(record.msg)} % {safe_repr(record.args)}"


def _trace_of(attrs: dict[str, Any]) -> tuple[str | None, str | None]:
    """`(trace_id, span_id)`: the record's own (`extra=`), else the current request's or task's."""
    trace_id = attrs.get("trace_id")
    if trace_id is not None:
        return trace_id, attrs.get("span_id")
    trace = current_trace()
    if trace is not None:
        return trace.trace_id, trace.span_id
    return None, attrs.get("span_id")


class _Clock:
    """RFC 3339 UTC timestamps with milliseconds; the seconds part is computed once a second."""

    def __init__(self) -> None:
        # One tuple, replaced whole: threads share the clock, and a prefix must never be paired
        # with another second.
        self._cached: tuple[int, str] = (-1, "")

    def rfc3339(self, created: float) -> str:
        second, millis = divmod(round(created * 1000), 1000)  # nearest ms: .001 stays .001
        cached = self._cached
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._cached = cached
        return f"{cached[1]}.{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """Renders a record as one line of JSON: ts, level, logger, message, service, env, trace_id.

    Every `extra=` field is included; exceptions add `exc_type`, `exc_message` and `stack`.
    The line is cached on the record, so several handlers sharing this formatter format once.
    """

    def __init__(
        self,
        service: str = "app",
        env: str = "development",
        redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
    ) -> None:
        super().__init__()
        self.service = service
        self.env = env
        self.redactor = Redactor(redact_keys)
        self._clock = _Clock()

    def timestamp(self, created: float) -> str:
        """`created` (seconds since the epoch) as RFC 3339 UTC with milliseconds."""
        return self._clock.rfc3339(created)

    def format(self, record: logging.LogRecord) -> str:
        cached = record.__dict__.get("_exporter_json")
        if cached is not None and cached[0] is self:
            return str(cached[1])
        try:
            line = self._render(record)
        except Exception as exc:  # never crash the caller; say what went wrong instead
            line = self._format_error(record.created, record.levelname, record.name,
                                      safe_repr(record.msg), exc)
        record._exporter_json = (self, line)
        return line

    def _format_error(
        self, created: float, levelname: str, logger: str, message: str, exc: Exception
    ) -> str:
        """The line that says a record could not be rendered, and why."""
        return _dumps({
            "ts": self.timestamp(created), "level": levelname.lower(), "logger": logger,
            "message": self.redactor.text(message), "service": self.service, "env": self.env,
            "trace_id": None, "format_error": f"{type(exc).__name__}: {exc}",
        })

    def snapshot(self, record: logging.LogRecord) -> Snapshot | None:
        """What the line of `record` needs from the moment it was logged (its message, the
        current trace, copies of its `extra=` fields), so that `render_snapshot` can make the
        line later on another thread; None when the record is not suited (it carries an
        exception or a stack, or an `extra=` value that could change and is not a flat dict)."""
        if record.exc_info or record.exc_text or record.stack_info:
            return None
        attrs = record.__dict__
        extras = {key: attrs[key] for key in attrs.keys() - _RECORD_FIELDS}
        if not _SCALARS.issuperset(map(type, extras.values())):  # the type checks run in C
            for key, value in extras.items():
                if type(value) is dict and _SCALARS.issuperset(map(type, value.values())):
                    extras[key] = tuple(value.items())  # a copy, as pairs
                elif type(value) not in _SCALARS:
                    return None
        trace_id, span_id = _trace_of(attrs)
        return (record.created, record.levelname, record.name, _message_of(record), trace_id,
                span_id, tuple(extras.items()) if extras else None)

    def render_snapshot(self, snapshot: Snapshot) -> str:
        """The line of a record from its `snapshot()`."""
        try:
            return self._render_parts(snapshot)
        except Exception as exc:
            return self._format_error(*snapshot[:4], exc)

    def _render(self, record: logging.LogRecord) -> str:
        attrs = record.__dict__
        extras = attrs.keys() - _RECORD_FIELDS  # a set operation in C beats a Python loop
        trace_id, span_id = _trace_of(attrs)
        return self._render_parts(
            (record.created, record.levelname, record.name, _message_of(record), trace_id,
             span_id, None), {key: attrs[key] for key in extras}, record)

    def _render_parts(
        self, snapshot: Snapshot, extras: dict[str, Any] | None = None,
        record: logging.LogRecord | None = None,
    ) -> str:
        """The line of a snapshot, or of a record (`extras` and `record` given: its exception
        and stack too)."""
        redactor = self.redactor
        created, levelname, logger, message, trace_id, span_id, pairs = snapshot
        if pairs is not None:
            extras = {key: dict(value) if type(value) is tuple else value for key, value in pairs}
        doc: dict[str, Any] = {
            "ts": self._clock.rfc3339(created),
            "level": levelname.lower(),
            "logger": logger,
            "message": redactor.text(message),
            "service": self._service(extras.get("service") if extras else None),
            "env": self.env,
            "trace_id": trace_id,
        }
        if span_id is not None:
            doc["span_id"] = span_id
        if extras:
            for key in sorted(extras):
                if key not in doc:
                    value = extras[key]
                    doc[key] = REDACTED if redactor.is_secret(key) else redactor.value(value)
        if record is not None:
            self._add_exception(doc, record)
        try:
            return _dumps(doc)
        except (TypeError, ValueError):  # non-str keys, circular references...
            return _dumps(redactor.value(doc))

    def _add_exception(self, doc: dict[str, Any], record: logging.LogRecord) -> None:
        """The record's exception and stack, scrubbed (a snapshot never has them)."""
        redactor = self.redactor
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, _tb = record.exc_info
            doc["exc_type"] = exc_type.__name__
            doc["exc_message"] = redactor.text(safe_str(exc))
            doc["stack"] = redactor.text("".join(traceback.format_exception(*record.exc_info)))
        elif record.exc_text:
            doc["stack"] = redactor.text(record.exc_text)
        if record.stack_info:
            doc["stack_info"] = redactor.text(record.stack_info)

    def _service(self, given: Any) -> str:
        # `extra={"service": ...}` names another service; whatever it is, the field is text.
        if given is None or given == "":
            return self.service
        return given if isinstance(given, str) else self.redactor.text(safe_str(given))

    def render_fields(
        self, created: float, level: str, logger: str, fields: dict[str, Any],
        trusted: frozenset[str] = frozenset(),
    ) -> str:
        """One line for an entry that did not come from `logging` (access log, ingestion API).
        The values of `trusted` keys are the caller's own, already scrubbed or made by it (a
        number, a route template): written as they are, unless the key names a secret."""
        doc: dict[str, Any] = {
            "ts": self._clock.rfc3339(created), "level": level, "logger": logger,
        }
        redactor = self.redactor
        for key, value in fields.items():
            if redactor.is_secret(key):
                doc[key] = REDACTED
            else:
                doc[key] = value if key in trusted else redactor.value(value)
        doc.setdefault("service", self.service)
        doc.setdefault("env", self.env)
        doc.setdefault("trace_id", None)
        try:
            return _dumps(doc)
        except (TypeError, ValueError):
            return _dumps(redactor.value(doc))
