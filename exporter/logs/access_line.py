"""`AccessLine`: the JSON line of one request for access_*.log, written out directly.

`JsonFormatter.render_fields` builds a dict, asks the redactor about every key and value, and
encodes the dict: for the access log, one line per request, that came to about 120,000 CPU
instructions a line, as much as an eighth of what the whole request costs the server. The
access line's keys are fixed and its values few and plain, so the line is written out with an
f-string: the same bytes as `render_fields` makes (tests/test_logs_access_line.py compares
them), the values that come from the request still scrubbed, for about a quarter of the work.
"""

from __future__ import annotations

from json.encoder import encode_basestring  # json's own string escaping (its C version)

from exporter.logs.formatter import JsonFormatter

# The fields of an access line after ts, level and logger, in their order in the line: first
# those every line of ours starts with (the formatter's order, which the Loki shipper reads
# without parsing the line), then the request's.
FIELDS = ("message", "service", "env", "trace_id", "span_id", "method", "route", "path",
          "status", "duration_ms", "client")
LOGGER = "exporter.access"


class AccessLine:
    """Writes access lines as `formatter.render_fields` would; `fits` is False when a key of
    the line is a configured secret name (then the caller uses `render_fields`, which hides
    it)."""

    def __init__(self, formatter: JsonFormatter) -> None:
        self._formatter = formatter
        redactor = formatter.redactor
        self.fits = not any(redactor.is_secret(key) for key in FIELDS)
        self._service = (f',"service":{encode_basestring(formatter.service)}'
                         f',"env":{encode_basestring(formatter.env)}')

    def line(
        self, created: float, level: str, method: str, route: str, path: str, status: int,
        duration_ms: float, client: str | None, trace_id: str, span_id: str,
    ) -> str:
        """The line; `path`, `client`, `trace_id` and `span_id` already scrubbed (where they
        may hold one), `method` and `route` our own (not scrubbed), `status` an int and
        `duration_ms` a float (`plain` says whether the values are)."""
        quoted = encode_basestring(path)
        message = encode_basestring(f"{method} {path} {status}")
        client_json = "null" if client is None else encode_basestring(client)
        return (
            f'{{"ts":"{self._formatter.timestamp(created)}","level":{encode_basestring(level)}'
            f',"logger":"{LOGGER}","message":{message}{self._service}'
            f',"trace_id":{encode_basestring(trace_id)},"span_id":{encode_basestring(span_id)}'
            f',"method":{encode_basestring(method)},"route":{encode_basestring(route)}'
            f',"path":{quoted},"status":{status},"duration_ms":{duration_ms!r}'
            f',"client":{client_json}}}'
        )


def plain(status: object, duration_ms: object, client: object, trace_id: object,
          span_id: object) -> bool:
    """Whether `AccessLine.line` takes these values (else `render_fields` renders them)."""
    return (type(status) is int and type(duration_ms) is float
            and (client is None or type(client) is str)
            and type(trace_id) is str and type(span_id) is str)
