"""The Loki push API on the wire: the gzipped JSON body (each value `[ns, line]`, or
`[ns, line, {structured metadata}]`), and one keep-alive HTTP connection."""

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
from json.encoder import encode_basestring
from typing import Any
from urllib.parse import urlsplit

PUSH_PATH = "/loki/api/v1/push"
Labels = tuple[tuple[str, str], ...]
# Structured metadata of one line (string keys and values; Loki indexes none of it), or None.
Metadata = dict[str, str] | None
Entry = tuple[Labels, int, str, Metadata]  # labels, ns timestamp, line, structured metadata
_DETAIL_BYTES = 16 << 10  # of an error answer: Loki lists one error per stream before the next


def push_url(base: str) -> str:
    """The push endpoint for a Loki base URL (a URL already ending in the push path is kept)."""
    base = base.rstrip("/")
    return base if base.endswith(PUSH_PATH) else base + PUSH_PATH


def encode_push(entries: list[Entry]) -> bytes:
    """A gzipped push body; `entries` are (labels, ns timestamp, line, metadata) in the order to
    keep. Metadata is the third element of a value (Loki's push API), only when a line has it.

    Each value is written out as JSON text (json's own escaping, in C, for every string): the
    same bytes as encoding lists and dicts with `_dumps`, at half the work per line, the
    lines being the shipper's largest cost after their escaping."""
    streams: dict[Labels, list[str]] = {}
    for labels, ts_ns, line, metadata in entries:
        values = streams.get(labels)
        if values is None:
            values = streams[labels] = []
        if not metadata:
            values.append(f'["{ts_ns}",{_quote(line)}]')
        elif len(metadata) == 2 and "trace_id" in metadata and "span_id" in metadata:
            values.append(f'["{ts_ns}",{_quote(line)},{{"trace_id":'
                          f'{_quote(metadata["trace_id"])},"span_id":'
                          f'{_quote(metadata["span_id"])}}}]')
        else:
            values.append(f'["{ts_ns}",{_quote(line)},{_dumps(metadata)}]')
    return _gzip(("{\"streams\":[" + ",".join(
        f'{{"stream":{_dumps(dict(labels))},"values":[{",".join(values)}]}}'
        for labels, values in streams.items()) + "]}").encode("utf-8", "replace"))


# Nothing we encode refers to itself: without the check, each value list and metadata object
# costs a fifth less to encode (the markers the check keeps per container).
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
_quote = encode_basestring  # a JSON string, non-ASCII as it is: what `_dumps` writes for one


def _gzip(body: bytes) -> bytes:
    # Level 1: most of gzip's size win on repetitive JSON lines at a fraction of the CPU.
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    return packer.compress(body) + packer.flush()


def _packed(streams: dict[Labels, list[list[Any]]]) -> bytes:
    return _gzip(_dumps(
        {"streams": [{"stream": dict(labels), "values": values} for labels, values in
                     streams.items()]},
    ).encode("utf-8", "replace"))  # a lone surrogate (os.fsdecode, bad JSON input) becomes "?"


def without_metadata(body: bytes) -> tuple[bytes, int]:
    """`body` (from `encode_push`, maybe read back from a spool) with every value's structured
    metadata left out, and how many lines lost theirs (0: `body` itself is returned, also when
    it cannot be read: Loki refuses it, and it is counted as rejected, as before)."""
    try:
        doc = json.loads(zlib.decompress(body, 47))  # 47: gzip or zlib header, as written
        stripped = 0
        for stream in doc["streams"]:
            for value in stream["values"]:
                if len(value) > 2:
                    del value[2:]
                    stripped += 1
        streams = {tuple(s["stream"].items()): s["values"] for s in doc["streams"]}
    except (zlib.error, ValueError, KeyError, TypeError, AttributeError):
        return body, 0
    return (_packed(streams), stripped) if stripped else (body, 0)


@dataclass(frozen=True, slots=True)
class PushResult:
    """How one push ended: `ok`, `retry` (429, 5xx, network) or `reject` (other 4xx)."""

    outcome: str
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


def refuses_metadata(result: PushResult) -> bool:
    """True when Loki refused a push because it takes no structured metadata (a schema before
    v13, or `limits_config.allow_structured_metadata: false`): its 400 says "stream '{...}'
    includes structured metadata, but this feature is disallowed" (Loki's validation errors)."""
    detail = result.detail.lower()
    return (result.status == 400 and "structured metadata" in detail
            and ("disallowed" in detail or "not allowed" in detail or "disabled" in detail))


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
            detail = response.read(_DETAIL_BYTES).decode("utf-8", "replace").strip()
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
