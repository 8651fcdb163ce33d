"""Shared fixtures: fresh registries, free ports, a real sidecar subprocess, integration gates."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from tests.sentry_receiver import SentryReceiver, sentry_receiver

# In CI (.ci/run sets it) a missing binary or server fails the test instead of skipping it.
REQUIRE_INTEGRATION = os.environ.get("EXPORTER_REQUIRE_INTEGRATION") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip the test with `reason` unless integration is required, where it fails instead."""
    if condition:
        return
    if REQUIRE_INTEGRATION:
        pytest.fail(f"EXPORTER_REQUIRE_INTEGRATION=1 but {reason}")
    pytest.skip(reason)


def require_binary(name: str, package: str) -> str:
    """The path of `name`, or skip/fail naming the Debian package that provides it."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed (apt-get install -y {package})")
    assert path is not None
    return path


def require_tcp(host: str, port: int, what: str) -> None:
    """Skip/fail unless something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            reachable = True
    except OSError:
        reachable = False
    require(reachable, f"{what} is not reachable at {host}:{port}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def sentry_endpoint() -> Iterator[SentryReceiver]:
    """The in-test Sentry endpoint (tests/sentry_receiver.py), which must see no protocol error."""
    with sentry_receiver() as running:
        yield running
    assert running.errors == []


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry, so no test sees another's samples."""
    return CollectorRegistry()


@dataclass
class RunningServer:
    """A real `exporter serve` process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        """What the process printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Poll `url` until it answers; fail early when the process has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def run_sidecar(
    tmp_path: Path,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    health_path: str = "/healthz",
) -> Iterator[RunningServer]:
    """Start `python -m exporter serve` on a free port; SIGTERM it afterwards."""
    port = free_port()
    log_path = tmp_path / f"sidecar-{port}.log"
    full_env = {
        **os.environ,
        "EXPORTER_DATA_DIR": str(tmp_path / "data"),
        "EXPORTER_LOG_DIR": str(tmp_path / "logs"),
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve", "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_up(server.url + health_path, process)
        yield server
    except BaseException:
        print(server.output())
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
