"""The real sidecar process: SIGTERM while Loki is down, restart, and every line arrives; two
workers, one of which ships the folder they share."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.conftest import free_port, run_sidecar
from tests.loki_receiver import LokiReceiver

ENTRIES = 2_000


def test_lines_loki_missed_before_sigterm_are_shipped_by_the_next_start(tmp_path: Path) -> None:
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
    # signal): the lines are in the daily file, past the position Loki acknowledged.
    assert "Traceback" not in server.output()
    (app_file,) = (tmp_path / "logs").glob("app_*.log")
    (saved,) = (tmp_path / "data" / "loki-positions").glob("*.json")
    positions = json.loads(saved.read_text())
    acknowledged = positions["files"].get(app_file.name, [0, 0, 0])[2]
    assert acknowledged < app_file.stat().st_size
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


def test_two_workers_share_the_log_folder_and_one_ships_it(tmp_path: Path) -> None:
    receiver = LokiReceiver(free_port()).start()
    env = {"EXPORTER_LOKI_URL": receiver.url, "EXPORTER_LOG_STDOUT": "false",
           "EXPORTER_LOKI_BATCH_WAIT_SECONDS": "0.1",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    try:
        with run_sidecar(tmp_path, args=["--workers", "2"], env=env) as server:
            with httpx.Client(base_url=server.url) as client:
                for start in range(0, ENTRIES, 250):
                    batch = [{"message": "entry", "seq": n} for n in range(start, start + 250)]
                    reply = client.post("/api/v1/logs/batch", json=batch)
                    assert reply.status_code == 200 and reply.json()["success"] == 250
            deadline = time.monotonic() + 15
            while len([1 for line in receiver.lines() if '"seq"' in line]) < ENTRIES:
                assert time.monotonic() < deadline, "lines missing"
                time.sleep(0.1)
        seqs = [json.loads(line)["seq"] for line in receiver.lines() if '"seq"' in line]
        assert sorted(seqs) == list(range(ENTRIES)), "a line was lost or shipped twice"
        (app_file,) = (tmp_path / "logs").glob("app_*.log")
        written = [json.loads(line) for line in app_file.read_text().splitlines()]
        assert sorted(d["seq"] for d in written if "seq" in d) == list(range(ENTRIES))
        assert len({d["logger"] for d in written}) >= 2
    finally:
        receiver.stop()
