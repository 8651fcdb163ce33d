"""`exporter serve` as a user runs it (with the demo routes inside, EXPORTER_DEMO): live numbers,
a clean scrape, a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import require_binary, run_sidecar


def scrape(url: str) -> str:
    response = httpx.get(url + "/metrics", timeout=5)
    assert response.status_code == 200
    return response.text


def demo_requests(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("http_requests_total{") and 'route="/demo/' in line
    )


def test_demo_sidecar_shows_live_numbers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with run_sidecar(tmp_path, env={"EXPORTER_DEMO": "true", "EXPORTER_DEMO_RATE": "40"}) as server:
        deadline = time.monotonic() + 15
        while demo_requests(scrape(server.url)) < 20 and time.monotonic() < deadline:
            time.sleep(0.25)
        text = scrape(server.url)
        assert demo_requests(text) >= 20
        for route in ("/demo/fast", "/demo/flaky", "/demo/items/{item_id}"):
            assert f'route="{route}"' in text
        assert "system_cpu_usage_ratio" in text and "process_resident_memory_bytes" in text
        health = httpx.get(server.url + "/healthz", timeout=5)
        assert health.json()["status"] == "ok"
        assert "x-trace-id" not in health.headers  # excluded paths bypass the middleware
        for path in ("/healthz", "/"):  # uptime checkers often send HEAD
            assert httpx.head(server.url + path, timeout=5).status_code == 200
        fast = httpx.get(server.url + "/demo/fast", timeout=5)
        assert len(fast.headers["x-trace-id"]) == 32

        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: death by SIGTERM is the
        # conventional exit status of a well-behaved server that was asked to stop.
        assert server.process.wait(timeout=15) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 10
    output = server.output()
    assert "Traceback" not in output
    assert "Application shutdown complete" in output


def test_ctrl_c_stops_without_a_traceback(tmp_path: Path) -> None:
    with run_sidecar(tmp_path, env={"EXPORTER_DEMO": "true"}) as server:
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=15) in (0, 130)
    output = server.output()
    assert "Traceback" not in output
    assert "KeyboardInterrupt" not in output
    assert "Application shutdown complete" in output


def test_demo_config_can_be_changed_while_running(tmp_path: Path) -> None:
    with run_sidecar(tmp_path, env={"EXPORTER_DEMO": "true", "EXPORTER_DEMO_RATE": "0"}) as server:
        changed = httpx.put(
            server.url + "/demo/config",
            json={"error_ratio": 1.0, "slow_seconds": 0.0, "rate": 0},
            timeout=5,
        )
        assert changed.status_code == 200
        statuses = {httpx.get(server.url + "/demo/flaky", timeout=5).status_code for _ in range(5)}
        assert statuses == {500}
        bad = httpx.put(server.url + "/demo/config", json={"error_ratio": 2}, timeout=5)
        assert bad.status_code == 422
        assert "error_ratio" in bad.text
        # One knob alone: the others keep their values.
        partial = httpx.put(server.url + "/demo/config", json={"slow_seconds": 0.25}, timeout=5)
        assert partial.json() == {"error_ratio": 1.0, "slow_seconds": 0.25, "rate": 0.0}
        assert httpx.get(server.url + "/demo/config", timeout=5).json() == partial.json()


def test_promtool_finds_no_problem_in_a_real_scrape(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    with run_sidecar(tmp_path, env={"EXPORTER_DEMO": "true", "EXPORTER_DEMO_RATE": "40"}) as server:
        deadline = time.monotonic() + 15
        while demo_requests(scrape(server.url)) < 10 and time.monotonic() < deadline:
            time.sleep(0.25)
        text = scrape(server.url)
    assert "http_request_duration_seconds_bucket" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


def test_version_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "version"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    import exporter

    assert result.stdout.strip() == exporter.__version__


def serve_error(tmp_path: Path, *args: str, **env: str) -> str:
    """The one stderr line of an `exporter serve` that must refuse to start."""
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "serve", *args], capture_output=True, text=True,
        timeout=60, env={**os.environ, "EXPORTER_DATA_DIR": str(tmp_path / "data"),
                         "EXPORTER_LOG_DIR": str(tmp_path / "logs"), **env},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_port_in_use_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        line = serve_error(tmp_path, "--port", str(port))
        assert line.startswith("exporter: error: --port (EXPORTER_PORT): cannot listen on")
        assert f"127.0.0.1:{port}" in line
        line = serve_error(tmp_path, EXPORTER_PORT=str(port))
        assert line.startswith("exporter: error: EXPORTER_PORT: cannot listen on")


def test_an_unknown_host_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    line = serve_error(tmp_path, EXPORTER_HOST="no-such-host.invalid")
    assert line.startswith("exporter: error: EXPORTER_HOST: cannot resolve 'no-such-host.invalid'")


def test_a_log_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = serve_error(tmp_path, EXPORTER_LOG_DIR=str(blocker / "logs"))
    assert line.startswith("exporter: error: EXPORTER_LOG_DIR: cannot write log files in")
    assert str(blocker / "logs") in line
