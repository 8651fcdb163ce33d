"""`exporter serve --demo`: the demo shop in a process of its own, started and stopped with the
sidecar, which watches it as a target (as it would watch your app)."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from exporter.config import Settings, SettingsError, env_name

# The shop's own defaults: a report slow enough to be a slow request (and to push p95 over the
# 500 ms threshold), and a checkout that fails often enough to show errors, alerts included.
SHOP_DEFAULTS = {"demo_slow_seconds": "0.7", "demo_error_ratio": "0.25",
                 "service_name": "demo-shop"}
# Started by the sidecar, the shop's lines go to the files (the page's live tail), not to the
# terminal the sidecar prints to.
_CHILD_DEFAULTS = {"log_stdout": "false"}


def shop_environment(settings: Settings) -> dict[str, str]:
    """The environment of the demo process: the sidecar's, its port, and the shop's defaults
    where the user set nothing."""
    env = dict(os.environ)
    for name, value in {**SHOP_DEFAULTS, **_CHILD_DEFAULTS}.items():
        env.setdefault(env_name(name), value)
    env[env_name("port")] = str(settings.demo_port)
    env[env_name("host")] = "127.0.0.1"
    env[env_name("workers")] = "1"
    return env


@contextmanager
def demo_service(settings: Settings, timeout: float = 30.0) -> Iterator[str]:
    """Start `exporter demo`; yields its host:port once its /metrics answers; stops it after."""
    address = f"127.0.0.1:{settings.demo_port}"
    print(f"exporter: starting the demo shop on http://{address} (exporter demo)",
          file=sys.stderr)
    process = subprocess.Popen([sys.executable, "-m", "exporter", "demo"],
                               env=shop_environment(settings), preexec_fn=_die_with_parent)
    # uvicorn ends a SIGTERM'd server by raising the signal again once it has shut down: with
    # the default handler, the sidecar would die there and leave the shop running.
    previous = _terminate_as_exit()
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise SettingsError(f"the demo shop exited with status {process.returncode} "
                                    f"(EXPORTER_DEMO_PORT={settings.demo_port}: in use?)")
            try:
                if httpx.get(f"http://{address}/metrics", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SettingsError(f"the demo shop did not answer on {address} within "
                                    f"{timeout:g} s")
            time.sleep(0.2)
        yield address
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _terminate_as_exit() -> signal.Handlers | None:
    """SIGTERM raises SystemExit (so `finally` stops the shop); the old handler, to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return previous  # type: ignore[return-value]


def _die_with_parent() -> None:
    """In the shop's process, before exec: on Linux, SIGTERM when the sidecar dies, even by
    `kill -9` (prctl PR_SET_PDEATHSIG), so no shop is left behind holding its port."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def demo_watch_defaults(settings: Settings) -> dict[str, object]:
    """How the sidecar watches the demo where the user set nothing: a point every 5 s, and
    rates over 1 minute (a copy of the thresholds with `render.rate_window: 1m` in
    EXPORTER_DATA_DIR), so the numbers settle within the first minute; a service of yours
    keeps thresholds.yaml's 5m, as its Prometheus rules do."""
    from exporter.thresholds import packaged_text, parse_thresholds

    chosen: dict[str, object] = {}
    if env_name("history_interval_seconds") not in os.environ:
        chosen["history_interval_seconds"] = 5.0
    if settings.thresholds_file is None:
        text = re.sub(r"(?m)^(\s+rate_window:\s*)\S+", r"\g<1>1m", packaged_text())
        parse_thresholds(text, "the demo's thresholds")  # still valid: it is ours
        path = Path(settings.data_dir) / "demo-thresholds.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Written by `exporter serve --demo`: the packaged thresholds, with "
                        "rates over 1m.\n" + text, encoding="utf-8")
        chosen["thresholds_file"] = str(path)
    return chosen
