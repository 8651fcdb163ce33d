"""GET /api/v1/observability/logs/stream: the live log tail over a WebSocket, on a real sidecar."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import RunningServer, run_sidecar
from tests.ws_raw import RawWebSocket

TOKEN = "tail-token-" + uuid.uuid4().hex
QUEUE_LINES = 200
STREAM = "/api/v1/observability/logs/stream"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "EXPORTER_API_TOKEN": TOKEN, "EXPORTER_LOG_STDOUT": "false",
        "EXPORTER_LOG_TAIL_QUEUE_LINES": str(QUEUE_LINES), "EXPORTER_LOG_TAIL_MAX_CLIENTS": "4",
    }
    with run_sidecar(tmp_path_factory.mktemp("tail"), env=env) as server:
        yield server


def ws_url(server: RunningServer, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + STREAM + (f"?{query}" if query else "")


@contextmanager
def open_tail(server: RunningServer, query: str = "") -> Iterator[ClientConnection]:
    protocols: list[Any] = ["exporter-logs", f"bearer.{TOKEN}"]
    with connect(ws_url(server, query), subprotocols=protocols, proxy=None) as ws:
        ready = json.loads(ws.recv(timeout=5))
        assert ready["type"] == "ready"
        yield ws


def write_log(server: RunningServer, message: str, level: str = "info", **extra: Any) -> None:
    body = {"message": message, "level": level, **extra}
    reply = httpx.post(f"{server.url}/api/v1/logs/write", json=body, headers=AUTH, timeout=5)
    assert reply.status_code == 202, reply.text


def received_lines(ws: ClientConnection, until: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Records received until one whose message contains `until`."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
        if message["type"] == "lines":
            for line in message["lines"]:
                record = json.loads(line)
                seen.append(record)
                if until in record.get("message", ""):
                    return seen
    raise AssertionError(f"no line with {until!r} within {timeout} s; got {seen}")


def close_reason(url: str, protocols: list[Any], first: str | None = None) -> tuple[int, str]:
    """The close code and reason the server ends the connection with."""
    with connect(url, subprotocols=protocols, proxy=None) as ws:
        if first is not None:
            ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_a_written_line_arrives_with_its_fields(sidecar: RunningServer) -> None:
    marker = uuid.uuid4().hex
    with open_tail(sidecar) as ws:
        assert ws.subprotocol == "exporter-logs"  # the token is never echoed back
        write_log(sidecar, f"order {marker} paid", order_id=42)
        record = received_lines(ws, marker)[-1]
    assert record["message"] == f"order {marker} paid"
    assert record["level"] == "INFO" or record["level"].lower() == "info"
    assert record["order_id"] == 42


def test_filters_have_the_semantics_of_logs(sidecar: RunningServer) -> None:
    marker = uuid.uuid4().hex
    trace = uuid.uuid4().hex
    with open_tail(sidecar, f"level=warning&contains={marker}") as by_level, \
            open_tail(sidecar, f"trace_id={trace}") as by_trace:
        write_log(sidecar, f"{marker} info, filtered out")
        write_log(sidecar, f"{marker} warning, kept", level="warning")
        write_log(sidecar, f"other {uuid.uuid4().hex} error, filtered out", level="error")
        write_log(sidecar, f"{marker} error, kept", level="error", trace_id=trace)
        kept = received_lines(by_level, f"{marker} error")
        traced = received_lines(by_trace, f"{marker} error")
    assert [r["message"] for r in kept] == [f"{marker} warning, kept", f"{marker} error, kept"]
    assert [r["message"] for r in traced] == [f"{marker} error, kept"]


def test_token_as_the_first_message(sidecar: RunningServer) -> None:
    marker = uuid.uuid4().hex
    with connect(ws_url(sidecar), subprotocols=["exporter-logs"],  # type: ignore[list-item]
                 proxy=None) as ws:
        ws.send(json.dumps({"type": "auth", "token": TOKEN}))
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        write_log(sidecar, marker)
        assert received_lines(ws, marker)[-1]["message"] == marker


def test_a_wrong_or_missing_token_closes_with_4401(sidecar: RunningServer) -> None:
    url = ws_url(sidecar)
    assert close_reason(url, ["exporter-logs", "bearer.wrong"]) == (4401, "invalid bearer token")
    assert close_reason(url, ["exporter-logs"], json.dumps({"type": "auth", "token": "no"})) == (
        4401, "invalid bearer token")
    code, reason = close_reason(url, ["exporter-logs"], json.dumps({"type": "hello"}))
    assert code == 4401
    assert "bearer.<token>" in reason


def test_the_token_in_the_url_is_not_accepted(sidecar: RunningServer) -> None:
    code, _ = close_reason(ws_url(sidecar, f"token={TOKEN}"), ["exporter-logs"], "{}")
    assert code == 4401


def test_bad_filters_close_with_1008_naming_the_parameter(sidecar: RunningServer) -> None:
    for query, named in (("level=loud", "level"), ("stream=nope", "stream"),
                         ("colour=red", "colour")):
        code, reason = close_reason(
            ws_url(sidecar, query), ["exporter-logs", f"bearer.{TOKEN}"])
        assert code == 1008
        assert named in reason


def metric(server: RunningServer, name: str) -> float:
    for line in httpx.get(server.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


def flood(server: RunningServer, batches: int, marker: str) -> int:
    padding = "x" * 2000
    for n in range(batches):
        entries = [{"message": f"{marker} {n}-{i} {padding}"} for i in range(1000)]
        reply = httpx.post(f"{server.url}/api/v1/logs/batch", json={"entries": entries},
                           headers=AUTH, timeout=30)
        assert reply.json()["success"] == 1000, reply.text
    return batches * 1000


def test_a_client_that_never_reads_keeps_server_memory_bounded(
    sidecar: RunningServer, tmp_path: Path
) -> None:
    host, port = sidecar.url.removeprefix("http://").split(":")
    stalled = RawWebSocket(host, int(port), STREAM, ["exporter-logs", f"bearer.{TOKEN}"])
    try:
        assert stalled.message()["type"] == "ready"
        marker = uuid.uuid4().hex
        process = psutil.Process(sidecar.process.pid)
        sent = flood(sidecar, 5, marker)  # fills the socket buffers and the client's queue
        time.sleep(0.5)
        before = process.memory_info().rss
        sent += flood(sidecar, 30, marker)  # 60 MB of log lines the client does not read
        deadline = time.monotonic() + 30
        while metric(sidecar, "log_tail_skipped_lines_total") < sent - 50_000:
            assert time.monotonic() < deadline, "the tail did not skip the lines it could not send"
            time.sleep(0.2)
        grown = process.memory_info().rss - before
        peak = metric(sidecar, "log_tail_queued_lines_peak")
        print(f"RSS grew by {grown / 1e6:.1f} MB while 60 MB were written; peak queue {peak}")
        assert peak <= QUEUE_LINES
        assert metric(sidecar, "log_tail_queued_lines") <= QUEUE_LINES
        assert grown < 25e6

        # Reading again: what was queued arrives, then the notice of what was skipped.
        received = skipped = 0
        while skipped == 0:
            message = stalled.message()
            if message["type"] == "lines":
                received += len(message["lines"])
            elif message["type"] == "skipped":
                skipped = message["count"]
        assert skipped > sent - 50_000
        assert received + skipped <= sent
    finally:
        stalled.close()


def test_the_token_never_reaches_a_log_file_or_the_output(sidecar: RunningServer) -> None:
    # Runs last in this module: every connection above offered the token in some way.
    logs = sidecar.log_path.parent / "logs"
    written = [p for p in logs.rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert TOKEN not in path.read_text(errors="replace"), path
    assert TOKEN not in sidecar.output()
