"""Instrumented requests must not make the cyclic garbage collector run: a full collection of a
FastAPI process pauses it for tens of milliseconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, require_binary, wait_until_up

ROOT = Path(__file__).resolve().parent.parent


def _requests(wrk_output: str) -> int:
    return int(next(line.split()[0] for line in wrk_output.splitlines() if "requests in" in line))


@pytest.mark.parametrize(("factory", "path"), [
    ("instrumented", "/items/7"),
    # Lines made later on the log writer thread: what waits for it must not drive the GC
    # either (a closure and the request per access line made it collect every ~60 requests).
    ("logging_app", "/logged/7"),
])
def test_concurrent_requests_do_not_drive_the_cyclic_gc(
    factory: str, path: str, tmp_path: Path
) -> None:
    # Building a dict of the request headers while the request's context held its trace made
    # uvicorn's process run a generation-0 collection every ~55 requests under 50 concurrent
    # connections (about 18 per 1,000, and a full collection every ~10,000), though nothing was
    # garbage. One connection did not show it.
    # Opening wrk's 50 connections costs a few collections of its own (5-8 per run here, however
    # long the run), so a slow machine's short run read 3.5 per 1,000 on that alone (4 in 1,148
    # requests). What requests cost is the slope between a short and a long run, each on fresh
    # connections: about 0.3 per 1,000 here.
    wrk = require_binary("wrk", "wrk")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EXPORTER_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["EXPORTER_LOG_DIR"] = str(tmp_path / "logs")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", f"tests.gc_app:{factory}",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log"],
        cwd=ROOT, env=env,
    )
    url = f"http://127.0.0.1:{port}"

    def run(seconds: int) -> tuple[int, int]:
        """(requests, generation-0 collections) of one wrk run of that many seconds."""
        before = httpx.get(f"{url}/gcstats").json()
        output = subprocess.run([wrk, "-t1", "-c50", f"-d{seconds}s", f"{url}{path}"],
                                capture_output=True, text=True, check=True).stdout
        after = httpx.get(f"{url}/gcstats").json()
        return _requests(output), after[0] - before[0]

    try:
        wait_until_up(f"{url}/gcstats", server)
        run(2)  # warm-up
        short, long = run(1), run(5)
    finally:
        server.terminate()
        server.wait(15)
    requests = long[0] - short[0]
    assert requests > 1000, f"only {requests} more requests in the long run: too few to tell"
    per_thousand = (long[1] - short[1]) * 1000 / requests
    assert per_thousand < 3, (
        f"{per_thousand:.1f} generation-0 collections per 1,000 requests "
        f"(short run {short[0]} requests, {short[1]} collections; "
        f"long run {long[0]} requests, {long[1]} collections)"
    )
