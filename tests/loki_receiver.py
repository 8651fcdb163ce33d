"""A small Loki push receiver on loopback that checks the wire format strictly.

It can be up, down (nothing listens on its port), slow, or answer 429 (with Retry-After) or 500.
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


def check_push(
    headers: dict[str, str], raw: bytes, require_gzip: bool = True
) -> list[tuple[dict[str, str], int, str]]:
    """The (labels, ns timestamp, line) entries of a push; ValueError says what is wrong."""
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
    entries: list[tuple[dict[str, str], int, str]] = []
    now_ns = time.time_ns()
    for stream in doc["streams"]:
        if not isinstance(stream, dict) or set(stream) != {"stream", "values"}:
            raise ValueError(f"a stream must have exactly 'stream' and 'values': {stream!r:.200}")
        labels = stream["stream"]
        if not isinstance(labels, dict) or not labels:
            raise ValueError("'stream' must be a non-empty object")
        for name, value in labels.items():
            if not _LABEL_NAME.match(name) or not isinstance(value, str) or not value:
                raise ValueError(f"bad label {name!r}={value!r}")
        if not isinstance(stream["values"], list) or not stream["values"]:
            raise ValueError("'values' must be a non-empty list")
        for value in stream["values"]:
            if not (isinstance(value, list) and len(value) == 2
                    and all(isinstance(v, str) for v in value)):
                raise ValueError(f"a value must be [ts, line] strings: {value!r:.200}")
            ts, line = value
            if not ts.isdigit() or len(ts) != 19:
                raise ValueError(f"timestamp must be a nanosecond decimal string, got {ts!r}")
            if abs(int(ts) - now_ns) > 86_400 * 10**9:
                raise ValueError(f"timestamp {ts} is more than a day away from now")
            entries.append((labels, int(ts), line))
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
        self.entries: list[tuple[dict[str, str], int, str]] = []
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
                    entries = check_push(headers, raw, receiver.require_gzip)
                except ValueError as exc:
                    receiver.errors.append(str(exc))
                    self._reply(400, str(exc).encode())
                    return
                with receiver._lock:
                    receiver.requests.append(headers)
                    receiver.entries.extend(entries)
                    receiver.count += len(entries)
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
