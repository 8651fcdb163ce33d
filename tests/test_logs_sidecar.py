"""The real sidecar process: SIGTERM while Loki is down, restart, and every line arrives."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from conftest import free_port, run_sidecar
from loki_receiver import LokiReceiver

ENTRIES = 2_000


def test_lines_spooled_at_sigterm_are_replayed_by_the_next_start(tmp_path: Path) -> None:
    receiver = LokiReceiver(free_port())  # not started: Loki is down
    env = {"EXPORTER_LOKI_URL": receiver.url, "EXPORTER_LOG_STDOUT": "false",
           "EXPORTER_LOKI_CLOSE_TIMEOUT_SECONDS": "1", "EXPORTER_SERVICE_NAME": "sidecar"}
    with run_sidecar(tmp_path, env=env) as server:
        for start in range(0, ENTRIES, 500):
            batch = [{"message": "entry", "seq": n, "level": ("info", "error")[n % 2]}
                     for n in range(start, start + 500)]
            reply = httpx.post(server.url + "/api/v1/logs/batch", json={"entries": batch})
            assert reply.status_code == 200 and reply.json()["success"] == 500
    # run_sidecar sent SIGTERM and waited (uvicorn shuts down gracefully, then re-raises the
    # signal): the lines are on disk, not lost.
    assert "Traceback" not in server.output()
    assert list((tmp_path / "data" / "loki-spool").glob("*/*.gz"))
    (app_file,) = (tmp_path / "logs").glob("app_*.log")
    assert app_file.read_text().count('"logger":"exporter.ingest"') == ENTRIES
    assert '"logger":"uvicorn.error"' in app_file.read_text()  # uvicorn's own lines, as JSON

    receiver.start()
    try:
        with run_sidecar(tmp_path, env=env):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                seqs = [json.loads(line).get("seq") for line in receiver.lines()]
                if len([s for s in seqs if s is not None]) >= ENTRIES:
                    break
                time.sleep(0.1)
        assert receiver.errors == []
        seqs = [s for s in (json.loads(line).get("seq") for line in receiver.lines())
                if s is not None]
        assert sorted(seqs) == list(range(ENTRIES))
        for level in ("info", "error"):
            stream = [json.loads(line)["seq"] for labels, _ts, line in receiver.entries
                      if labels["level"] == level and "seq" in json.loads(line)]
            assert stream == sorted(stream), f"the {level} stream arrived out of order"
    finally:
        receiver.stop()
