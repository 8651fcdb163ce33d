"""What an authorised `POST /api/v1/logs/batch` costs a real sidecar in memory: its peak RSS
growth (VmHWM after `clear_refs 5`) stays within twice the bodies in flight, and batches past
EXPORTER_LOG_BATCH_CONCURRENCY are refused with 429 and Retry-After before they are read."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import RunningServer, run_sidecar
from tests.raw_http import (
    MIB,
    at_once,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    send,
    upload,
)

TOKEN = "batch-memory-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BATCH = "/api/v1/logs/batch"


def _body(entries: int = 1000, size: int = 60_000) -> bytes:
    """A batch of `entries` entries of about `size` bytes each (60 MB by default)."""
    return json.dumps({"entries": [
        {"message": f"{n:06d} " + "x" * (size - 100), "service_name": "ads",
         "trace_id": f"{n:032x}", "adv_id": n} for n in range(entries)]}).encode()


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("batch-memory")
    env = {"EXPORTER_API_TOKEN": TOKEN, "EXPORTER_LOG_STDOUT": "false",
           "EXPORTER_LOG_BATCH_CONCURRENCY": "3"}
    with run_sidecar(tmp, env=env) as server:
        yield server


def _lines(server: RunningServer) -> int:
    folder = Path(server.log_path).parent / "logs"
    return sum(path.read_bytes().count(b'"adv_id"') for path in folder.glob("app_*.log"))


def _peak_growth(server: RunningServer, bodies: list[bytes], chunked: bool = False
                 ) -> tuple[list[int], int]:
    answers, growth = at_once(server.process.pid, lambda body: send(
        server.url, "POST", BATCH, body, headers=AUTH, chunked=chunked), bodies)
    return [answer.status for answer in answers], growth


def test_batch_memory_stays_within_twice_the_bodies(sidecar: RunningServer) -> None:
    body = _body()
    send(sidecar.url, "POST", BATCH, _body(10), headers=AUTH)  # warm up
    for count, chunked in ((1, False), (3, False), (3, True)):
        before = _lines(sidecar)
        statuses, growth = _peak_growth(sidecar, [body] * count, chunked)
        print(f"{count} x {len(body) / MIB:.1f} MiB batch{' (chunked)' if chunked else ''}: "
              f"peak RSS growth {growth / MIB:.1f} MiB, "
              f"{growth / (count * len(body)):.2f}x the bodies")
        assert statuses == [200] * count
        assert _lines(sidecar) - before == count * 1000
        assert growth <= 2 * count * len(body)


def _held(server: RunningServer, body: bytes) -> socket.socket:
    """A batch whose head and first byte are sent: the sidecar waits for the rest."""
    sock = socket.create_connection((urlsplit(server.url).hostname, urlsplit(server.url).port))
    sock.sendall((f"POST {BATCH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:1])
    return sock


def _finish(sock: socket.socket, body: bytes) -> bytes:
    with sock:
        sock.sendall(body[1:])
        sock.settimeout(60)
        received = b""
        while data := sock.recv(65536):
            received += data
    return received


def test_batches_past_the_bound_get_429_before_they_are_read(sidecar: RunningServer) -> None:
    body = _body(3, 200)
    held = [_held(sidecar, body) for _ in range(3)]  # EXPORTER_LOG_BATCH_CONCURRENCY=3
    try:
        time.sleep(1.0)  # the three are in the route, waiting for their bodies
        pid = sidecar.process.pid
        before = rss_bytes(pid)
        reset_peak_rss(pid)
        refused = upload(sidecar.url, "POST", BATCH, 50 * MIB, headers=AUTH)
        assert peak_rss_bytes(pid) - before < 5 * MIB  # refused unread
    finally:
        answers = [_finish(sock, body) for sock in held]
    assert refused.status == 429 and refused.headers["retry-after"] == "1"
    assert b"EXPORTER_LOG_BATCH_CONCURRENCY" in refused.body
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), answers
    assert send(sidecar.url, "POST", BATCH, body, headers=AUTH).status == 200  # places freed


def test_a_client_that_leaves_mid_batch_is_no_error(sidecar: RunningServer) -> None:
    body = _body(50, 2000)
    sock = _held(sidecar, body)
    sock.sendall(body[1:len(body) // 2])
    sock.close()
    time.sleep(1.0)
    errors = httpx.get(f"{sidecar.url}/api/v1/observability/errors", headers=AUTH).json()
    assert errors["total"] == 0, errors  # no 500, no error group
    assert send(sidecar.url, "POST", BATCH, body, headers=AUTH).status == 200
