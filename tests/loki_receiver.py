"""A small Loki push receiver on loopback that checks the wire format strictly.

It can be up, down (nothing listens on its port), slow, or answer 429 (with Retry-After) or 500,
or be a Loki that takes no structured metadata (`allow_structured_metadata = False`: a schema
before v13, or the limit off), which keeps the valid lines of a push and answers 400 with Loki's
own message for the others, as Loki's distributor does.
`GET /loki/api/v1/query_range` answers with the newest `limit` lines received, whatever the
LogQL query (it is not evaluated), in Loki's streams result shape.
Run as a script (`python tests/loki_receiver.py PORT`) it serves forever and answers
`GET /count` with the number of lines received, for the benchmark.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PUSH_PATH = "/loki/api/v1/push"
QUERY_PATH = "/loki/api/v1/query_range"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Loki's limits_config defaults: max_label_names_per_series, max_label_name_length,
# max_label_value_length, max_structured_metadata_entries_count, _size.
MAX_LABELS, MAX_NAME_CHARS, MAX_VALUE_CHARS = 15, 1024, 2048
MAX_METADATA_ENTRIES, MAX_METADATA_BYTES = 128, 64 * 1024
# pkg/validation/validate.go, DisallowedStructuredMetadataErrorMsg (the stream's labels in %s).
DISALLOWED_METADATA = (
    "stream '%s' includes structured metadata, but this feature is disallowed. Please see "
    "`limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
)
Metadata = dict[str, str] | None
Value = tuple[dict[str, str], int, str, Metadata]  # labels, ns timestamp, line, metadata


def _check_labels(labels: object) -> dict[str, str]:
    if not isinstance(labels, dict) or not labels:
        raise ValueError("'stream' must be a non-empty object")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} labels: Loki takes at most {MAX_LABELS}")
    for name, value in labels.items():
        if (not _LABEL_NAME.match(name) or name.startswith("__") or len(name) > MAX_NAME_CHARS
                or not isinstance(value, str) or not value or len(value) > MAX_VALUE_CHARS):
            raise ValueError(f"bad label {name!r}={value!r:.100}")
    return labels


def _check_metadata(metadata: object) -> dict[str, str]:
    """Structured metadata as Loki's push API takes it: an object of string keys and string
    values, nothing nested. Ours is stricter: keys LogQL can name (`| trace_id="..."`), values
    not empty, and no empty object (a line without metadata has a two-element value)."""
    if not isinstance(metadata, dict) or not metadata:
        raise ValueError(f"structured metadata must be a non-empty object: {metadata!r:.200}")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise ValueError(f"{len(metadata)} structured metadata entries (Loki: at most "
                         f"{MAX_METADATA_ENTRIES})")
    size = 0
    for name, value in metadata.items():
        if not _LABEL_NAME.match(name) or not isinstance(value, str) or not value:
            raise ValueError(f"bad structured metadata {name!r}={value!r:.100}")
        size += len(name) + len(value)
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"structured metadata of {size} bytes (Loki: {MAX_METADATA_BYTES})")
    return metadata


def _stream_text(labels: dict[str, str]) -> str:
    """Labels as Loki prints a stream in its messages: {a="1", b="2"}, sorted."""
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def check_push(
    headers: dict[str, str], raw: bytes, require_gzip: bool = True
) -> list[tuple[dict[str, str], int, str]]:
    """The (labels, ns timestamp, line) entries of a push; ValueError says what is wrong."""
    return [(labels, ts, line) for labels, ts, line, _meta in check_values(headers, raw,
                                                                           require_gzip)]


def check_values(headers: dict[str, str], raw: bytes, require_gzip: bool = True) -> list[Value]:
    """The (labels, ns timestamp, line, structured metadata or None) of each value of a push;
    ValueError says what is wrong."""
    if headers.get("content-type") != "application/json":
        raise ValueError(f"content-type must be application/json: {headers.get('content-type')}")
    if headers.get("content-encoding") == "gzip":
        if raw[:2] != b"\x1f\x8b":
            raise ValueError("body is not gzip")
        raw = gzip.decompress(raw)
    elif require_gzip:
        raise ValueError("body must be gzip-encoded")
    doc = json.loads(raw)
    if not isinstance(doc, dict) or set(doc) != {"streams"} or not isinstance(doc["streams"], list):
        raise ValueError("body must be {'streams': [...]}")
    entries: list[Value] = []
    now_ns = time.time_ns()
    for stream in doc["streams"]:
        if not isinstance(stream, dict) or set(stream) != {"stream", "values"}:
            raise ValueError(f"a stream must have exactly 'stream' and 'values': {stream!r:.200}")
        labels = _check_labels(stream["stream"])
        if not isinstance(stream["values"], list) or not stream["values"]:
            raise ValueError("'values' must be a non-empty list")
        for value in stream["values"]:
            if not (isinstance(value, list) and len(value) in (2, 3)
                    and all(isinstance(v, str) for v in value[:2])):
                raise ValueError(f"a value must be [ts, line] or [ts, line, {{metadata}}]: "
                                 f"{value!r:.200}")
            ts, line = value[:2]
            metadata = _check_metadata(value[2]) if len(value) == 3 else None
            if not ts.isdigit() or len(ts) != 19:
                raise ValueError(f"timestamp must be a nanosecond decimal string, got {ts!r}")
            if abs(int(ts) - now_ns) > 86_400 * 10**9:
                raise ValueError(f"timestamp {ts} is more than a day away from now")
            entries.append((labels, int(ts), line, metadata))
    return entries


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client killed mid-request
            super().handle_error(request, client_address)


class LokiReceiver:
    """The receiver; `mode` is 'up', 'slow', '429' or '500'; `stop()` makes it 'down'."""

    def __init__(self, port: int, require_gzip: bool = True) -> None:
        self.port = port
        self.require_gzip = require_gzip  # False for the bench baseline, which sends plain JSON
        self.url = f"http://127.0.0.1:{port}"
        self.mode = "up"
        self.delay = 0.0
        self.retry_after = "1"
        self.allow_structured_metadata = True
        self.refused_metadata = 0  # lines refused for their structured metadata
        self.entries: list[tuple[dict[str, str], int, str]] = []
        self.metadata: list[Metadata] = []  # of each entry, in the same order
        self.errors: list[str] = []
        self.requests: list[dict[str, str]] = []
        self.count = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    def start(self) -> LokiReceiver:
        """Listen (again) on the same port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                receiver._connections.add(self.connection)

            def finish(self) -> None:
                receiver._connections.discard(self.connection)
                super().finish()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
                       ) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/count":
                    self._reply(200, str(receiver.count).encode())
                elif url.path == QUERY_PATH:
                    limit = int(parse_qs(url.query).get("limit", ["100"])[0])
                    body = json.dumps(receiver.query_range(limit)).encode()
                    self._reply(200, body, {"Content-Type": "application/json"})
                else:
                    self._reply(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if len(raw) < length:  # the client died mid-request (kill -9): nothing arrived
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path != PUSH_PATH:
                    receiver.errors.append(f"POST to {self.path}")
                    self._reply(404, b"not found")
                    return
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.mode == "429":
                    self._reply(429, b"rate limited", {"Retry-After": receiver.retry_after})
                    return
                if receiver.mode == "500":
                    self._reply(500, b"ingester unavailable")
                    return
                try:
                    values = check_values(headers, raw, receiver.require_gzip)
                except ValueError as exc:
                    receiver.errors.append(str(exc))
                    self._reply(400, str(exc).encode())
                    return
                refused = []
                if not receiver.allow_structured_metadata:
                    refused = [DISALLOWED_METADATA % _stream_text(labels)
                               for labels, _ts, _line, meta in values if meta is not None]
                    values = [value for value in values if value[3] is None]
                with receiver._lock:
                    receiver.requests.append(headers)
                    receiver.entries.extend(value[:3] for value in values)
                    receiver.metadata.extend(value[3] for value in values)
                    receiver.count += len(values)
                    receiver.refused_metadata += len(refused)
                if refused:  # Loki keeps the valid lines and lists the errors (GroupedErrors)
                    groups = {message: refused.count(message) for message in refused}
                    self._reply(400, "; ".join(
                        message if len(groups) == 1 and n == 1 else f"{n} errors like: {message}"
                        for message, n in groups.items()).encode() + b"\n")
                    return
                self._reply(204)

        server = _Server(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            for conn in list(self._connections):  # "down" means kept-alive connections die too
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._server = None

    def query_range(self, limit: int) -> dict[str, Any]:
        """Loki's query_range answer holding the newest `limit` lines received, newest first."""
        with self._lock:
            newest = sorted(self.entries, key=lambda entry: entry[1], reverse=True)[:limit]
        streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
        for labels, ts, line in newest:
            streams.setdefault(tuple(sorted(labels.items())), []).append([str(ts), line])
        return {"status": "success", "data": {"resultType": "streams", "result": [
            {"stream": dict(labels), "values": values} for labels, values in streams.items()]}}

    def values(self) -> list[Value]:
        """Every (labels, ns timestamp, line, structured metadata or None) received, in order."""
        with self._lock:
            return [(*entry, meta) for entry, meta in zip(self.entries, self.metadata,
                                                          strict=True)]

    def lines(self) -> list[str]:
        """Every line received, in arrival order."""
        with self._lock:
            return [line for _labels, _ts, line in self.entries]

    def wait_for(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until at least `count` lines arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count >= count:
                return True
            time.sleep(0.02)
        return self.count >= count


@contextlib.contextmanager
def running_receiver() -> Iterator[LokiReceiver]:
    """A receiver up on a free port, stopped afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    receiver = LokiReceiver(port).start()
    try:
        yield receiver
    finally:
        receiver.stop()


if __name__ == "__main__":
    receiver = LokiReceiver(int(sys.argv[1]), require_gzip="--lenient" not in sys.argv).start()
    while True:
        time.sleep(3600)
