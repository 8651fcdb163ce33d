"""`exporter check`, and start-up refusing a bad thresholds file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from exporter.cli import main
from tests.conftest import require_tcp, run_sidecar

ROOT = Path(__file__).resolve().parent.parent


def test_check_prints_what_would_be_monitored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXPORTER_DEPENDENCIES", "db=postgresql://app:Planted-pw@db:5432/x")
    monkeypatch.setenv("EXPORTER_QUEUES", "redis://127.0.0.1:6379/0/celery")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "db [postgresql] postgresql://app:***@db:5432/x" in out
    assert "redis/celery on redis://127.0.0.1:6379/0" in out
    assert "HighCpuUsage: cpu_usage_ratio > 0.8 for 5m [warning]" in out
    assert "Planted-pw" not in out and out.rstrip().endswith("ok")


def test_check_names_the_bad_threshold_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "thresholds.yaml"
    bad.write_text((ROOT / "thresholds.yaml").read_text().replace("for: 10m", "for: soon"))
    assert main(["check", "--thresholds", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"exporter: error: {bad}: thresholds.disk.for: not a duration like 30s, " \
        "5m or 1h30m (got 'soon')"


def test_check_names_the_bad_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXPORTER_PROBE_TIMEOUT_SECONDS", "-1")
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("exporter: error: EXPORTER_PROBE_TIMEOUT_SECONDS:")
    assert len(err.strip().splitlines()) == 1


def test_a_misspelt_variable_is_named_with_the_setting_it_resembles(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXPORTER_PROT", "9500")
    assert main(["check"]) == 0  # a warning...
    assert "warning: EXPORTER_PROT: not a setting; did you mean EXPORTER_PORT?" in (
        capsys.readouterr().out)
    assert main(["check", "--strict"]) == 2  # ...an error when asked to be strict
    assert capsys.readouterr().err.strip() == (
        "exporter: error: EXPORTER_PROT: not a setting; did you mean EXPORTER_PORT?")


def test_probe_says_what_answers_and_why_the_others_do_not(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    monkeypatch.setenv("EXPORTER_DEPENDENCIES",
                       "cache=redis://127.0.0.1:6379/0,gone=redis://127.0.0.1:1/0")
    monkeypatch.setenv("EXPORTER_LOKI_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("EXPORTER_TARGETS", "127.0.0.1:1")
    assert main(["check", "--probe"]) == 1
    out = capsys.readouterr().out
    assert "reachable: 1 of 4" in out
    assert "ok   dependency cache (redis, redis://127.0.0.1:6379/0): ok" in out
    assert "FAIL dependency gone (redis, redis://127.0.0.1:1/0): ConnectionError" in out
    assert "FAIL loki: connection refused" in out
    assert "FAIL target http://127.0.0.1:1/metrics: connection refused" in out


def test_serve_refuses_a_bad_thresholds_file_from_any_directory(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("version: 1\nthresholds:\n  cpu:\n    alert: X\n")
    env = {**os.environ, "EXPORTER_THRESHOLDS_FILE": str(bad)}
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "serve", "--port", "1"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "thresholds.cpu.signal: Field required" in done.stderr
    assert "Traceback" not in done.stderr


def test_real_sidecar_serves_the_observability_api(tmp_path: Path) -> None:
    env = {"EXPORTER_HISTORY_INTERVAL_SECONDS": "0.2"}
    with run_sidecar(tmp_path, env=env) as server:
        reply = httpx.get(server.url + "/api/v1/observability/dashboard", timeout=10)
        assert reply.status_code == 200
        body = reply.json()
        assert body["health"]["status"] in ("healthy", "degraded")
        assert {c["name"] for c in body["health"]["checks"]} == {"system", "http"}
