"""The Loki push API on the wire: the gzipped JSON body, and one keep-alive HTTP connection."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import json
import socket
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

PUSH_PATH = "/loki/api/v1/push"
Labels = tuple[tuple[str, str], ...]


def push_url(base: str) -> str:
    """The push endpoint for a Loki base URL (a URL already ending in the push path is kept)."""
    base = base.rstrip("/")
    return base if base.endswith(PUSH_PATH) else base + PUSH_PATH


def encode_push(entries: list[tuple[Labels, int, str]]) -> bytes:
    """A gzipped push body; `entries` are (labels, ns timestamp, line) in the order to keep."""
    streams: dict[Labels, list[list[str]]] = {}
    for labels, ts_ns, line in entries:
        values = streams.get(labels)
        if values is None:
            values = streams[labels] = []
        values.append([str(ts_ns), line])
    body = json.dumps(
        {"streams": [{"stream": dict(labels), "values": values} for labels, values in
                     streams.items()]},
        ensure_ascii=False, separators=(",", ":"),
    ).encode("utf-8", "replace")  # a lone surrogate (os.fsdecode, bad JSON input) becomes "?"
    # Level 1: most of gzip's size win on repetitive JSON lines at a fraction of the CPU.
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    return packer.compress(body) + packer.flush()


@dataclass(frozen=True, slots=True)
class PushResult:
    """How one push ended: `ok`, `retry` (429, 5xx, network) or `reject` (other 4xx)."""

    outcome: str
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class LokiClient:
    """POSTs push bodies over one reused connection; never raises, always returns a result."""

    def __init__(
        self,
        url: str,
        tenant: str = "",
        username: str = "",
        password: str = "",
        bearer_token: str = "",
    ) -> None:
        parts = urlsplit(push_url(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Loki URL must be http(s)://host[:port] (got {url!r})")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if tenant:
            self._headers["X-Scope-OrgID"] = tenant
        if bearer_token:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        elif username:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._conn: http.client.HTTPConnection | None = None

    def push(self, body: bytes, timeout: float) -> PushResult:
        """Send one body; the connection is dropped and rebuilt after any failure."""
        try:
            conn = self._conn
            if conn is None:
                cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                conn = self._conn = cls(self._host, self._port, timeout=timeout)
            else:
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
            conn.request("POST", self._path, body=body, headers=self._headers)
            response = conn.getresponse()
            detail = response.read(512).decode("utf-8", "replace").strip()
            response.read()
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return PushResult("retry", None, None, f"{type(exc).__name__}: {exc}")
        status = response.status
        if 200 <= status < 300:
            return PushResult("ok", status)
        if status == 429 or status >= 500:
            return PushResult(
                "retry", status, _retry_after(response.getheader("Retry-After")), detail
            )
        return PushResult("reject", status, None, detail)

    def abort(self) -> None:
        """Cut the connection under a push in flight (from another thread): the push fails at
        once instead of waiting for its timeout."""
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Drop the connection (the next push opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
