"""A Sentry endpoint for tests: a real HTTP server that parses envelopes strictly.

Envelope format (develop.sentry.dev/sdk/data-model/envelopes/): a JSON header line, then items,
each an item-header JSON line carrying `type` and `length`, then exactly `length` payload bytes
and a newline. Anything else is recorded as a protocol error, which the tests assert is empty.

It answers 200, or what a test sets: `status` (500, or 429 with `retry_after`, as Sentry does
when it rate-limits a project), after `delay` seconds (longer than the client's timeout: a hung
Sentry). Envelopes it does not answer 200 are still parsed and counted in `refused`.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_EVENT_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Envelope:
    """One parsed envelope: its header and its `(item header, payload)` pairs."""

    header: dict[str, Any]
    items: list[tuple[dict[str, Any], bytes]]
    raw: bytes  # decompressed body, for "the secret appears nowhere" checks


@dataclass
class SentryReceiver:
    """What the endpoint received."""

    dsn: str
    envelopes: list[Envelope] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    status: int = 200
    retry_after: str = "60"
    delay: float = 0.0
    refused: int = 0

    def events(self) -> list[dict[str, Any]]:
        """The payloads of all `event` items."""
        return [json.loads(payload) for envelope in self.envelopes
                for header, payload in envelope.items if header["type"] == "event"]

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `count` events arrived; return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events()) >= count:
                break
            time.sleep(0.02)
        return self.events()


def parse_envelope(body: bytes) -> Envelope:
    """Parse `body` strictly; raise ValueError naming what is wrong."""
    header_line, sep, rest = body.partition(b"\n")
    header = json.loads(header_line)
    if not isinstance(header, dict) or not _EVENT_ID.fullmatch(str(header.get("event_id", ""))):
        # Envelopes without events (client reports, sessions) carry no event_id.
        if not (isinstance(header, dict) and "event_id" not in header):
            raise ValueError(f"bad envelope header {header_line!r}")
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest:
        item_line, sep, rest = rest.partition(b"\n")
        if not sep:
            raise ValueError("item header without newline")
        item_header = json.loads(item_line)
        if not isinstance(item_header.get("type"), str):
            raise ValueError(f"item header without type: {item_line!r}")
        if not isinstance(item_header.get("length"), int):
            raise ValueError(f"item header without length: {item_line!r}")
        length = item_header["length"]
        payload, rest = rest[:length], rest[length:]
        if len(payload) != length:
            raise ValueError(f"payload shorter than length {length}")
        if rest[:1] == b"\n":
            rest = rest[1:]
        elif rest:
            raise ValueError("payload not followed by a newline")
        if item_header["type"] == "event":
            json.loads(payload)  # must be JSON
        items.append((item_header, payload))
    return Envelope(header, items, body)


class _Handler(BaseHTTPRequestHandler):
    receiver: SentryReceiver

    def do_POST(self) -> None:
        receiver = self.receiver
        try:
            if self.path != "/api/1/envelope/":
                raise ValueError(f"unexpected path {self.path}")
            if "sentry_key=public" not in self.headers.get("X-Sentry-Auth", ""):
                raise ValueError("missing X-Sentry-Auth sentry_key")
            body = self.rfile.read(int(self.headers["Content-Length"]))
            encoding = self.headers.get("Content-Encoding")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding is not None:
                raise ValueError(f"unexpected Content-Encoding {encoding}")
            envelope = parse_envelope(body)
            header = envelope.header
            if "event_id" in header:
                # sentry-python names the project by the trace's public key rather than `dsn`;
                # when a `dsn` is sent it must be ours.
                key = (header.get("trace") or {}).get("public_key")
                if header.get("dsn", receiver.dsn) != receiver.dsn or key != "public":
                    raise ValueError(f"envelope header names another project: {header}")
                if not isinstance(header.get("sent_at"), str):
                    raise ValueError(f"envelope header lacks sent_at: {header}")
            if receiver.delay:
                time.sleep(receiver.delay)
            if receiver.status != 200:
                receiver.refused += 1
                self.send_response(receiver.status)
                if receiver.status == 429:
                    self.send_header("Retry-After", receiver.retry_after)
            else:
                receiver.envelopes.append(envelope)
                self.send_response(200)
        except Exception as exc:  # recorded, and the test fails on it
            receiver.errors.append(f"{type(exc).__name__}: {exc}")
            self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        with contextlib.suppress(OSError):  # a client that timed out is gone
            self.end_headers()
            self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def sentry_receiver() -> Iterator[SentryReceiver]:
    """A running endpoint on a free port; its DSN is `http://public@127.0.0.1:<port>/1`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    receiver = SentryReceiver(f"http://public@127.0.0.1:{server.server_address[1]}/1")
    server.RequestHandlerClass = type("Handler", (_Handler,), {"receiver": receiver})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
