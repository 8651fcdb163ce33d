"""Real Prometheus and Alertmanager processes for tests (Debian's binaries), on free ports."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import free_port, require_binary


@contextmanager
def _process(command: list[str], log: Path, ready_url: str, what: str) -> Iterator[str]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30.0
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}:\n"
                                   + log.read_text(errors="replace")[-3000:])
            try:
                if httpx.get(ready_url, timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready within 30 s:\n"
                                   + log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield ready_url.rsplit("/-/", 1)[0]
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def run_prometheus(tmp_path: Path, config: dict[str, Any],
                   extra_flags: Sequence[str] = ()) -> Iterator[str]:
    """Start Prometheus on `config` (a prometheus.yml as a dict), with exemplar storage and
    `extra_flags`; yields its base URL."""
    binary = require_binary("prometheus", "prometheus")
    port = free_port()
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    command = [
        binary, f"--config.file={config_file}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage",
        *(flag for flag in extra_flags if flag != "--enable-feature=exemplar-storage"),
    ]
    with _process(command, tmp_path / "prometheus.log",
                  f"http://127.0.0.1:{port}/-/ready", "prometheus") as url:
        yield url


@contextmanager
def run_alertmanager(tmp_path: Path, config: dict[str, Any]) -> Iterator[str]:
    """Start Alertmanager (clustering off) on `config`; yields its base URL."""
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    port = free_port()
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config))
    command = [
        binary, f"--config.file={config_file}", f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
    ]
    with _process(command, tmp_path / "alertmanager.log",
                  f"http://127.0.0.1:{port}/-/ready", "alertmanager") as url:
        yield url


def query(prometheus: str, expr: str) -> tuple[str | None, list[Any]]:
    """(error, result) of an instant query; error is None when Prometheus accepted it."""
    reply = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10.0)
    body = reply.json()
    if body.get("status") != "success":
        return f"{body.get('errorType')}: {body.get('error')}", []
    return None, list(body["data"]["result"])


def scrape_config(target: str, service: str) -> dict[str, Any]:
    """The exporter job, as in prometheus/prometheus.yml, for one target."""
    return {"job_name": "exporter",
            "static_configs": [{"targets": [target], "labels": {"service": service}}]}
