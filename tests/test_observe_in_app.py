"""An app instrumented with observability=True serves its own observability API and status page,
about itself, with two uvicorn workers: the figures are the whole app's, the page's own polling
is not counted, and the probes and the history run once for the host, not once per worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, require_binary, require_tcp, wait_until_up
from tests.test_status_page_browser import CHROMIUM_ARGS

API = "/api/v1/observability"
TOKEN = "in-app-token-4d1c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
THRESHOLDS = """
version: 1
thresholds:
  error_rate:
    alert: HighErrorRate
    signal: http_error_ratio
    above: 0.05
    for: 1s
    severity: critical
    summary: errors
render:
  rate_window: 4s
"""


@contextmanager
def orders(tmp_path: Path) -> Iterator[str]:
    """tests/inapp_app.py under uvicorn with 2 workers sharing a multiprocess directory."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (tmp_path / "thresholds.yaml").write_text(THRESHOLDS)
    port = free_port()
    env = {
        **os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "EXPORTER_API_TOKEN": TOKEN, "EXPORTER_SERVICE_NAME": "orders",
        "EXPORTER_DEPENDENCIES": "cache=redis://127.0.0.1:6379/0",
        "EXPORTER_PROBE_INTERVAL_SECONDS": "0.2", "EXPORTER_HISTORY_INTERVAL_SECONDS": "0.5",
        "EXPORTER_THRESHOLDS_FILE": str(tmp_path / "thresholds.yaml"),
        "EXPORTER_DATA_DIR": str(tmp_path / "data"), "EXPORTER_LOG_DIR": str(tmp_path / "logs"),
        "EXPORTER_LOG_STDOUT": "false",
    }
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.inapp_app:app", "--workers", "2",
             "--port", str(port), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parent.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/metrics", process)
        yield url
    except BaseException:
        print(log_path.read_text(errors="replace")[-5000:])
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def traffic(url: str, polled: list[str], count: int) -> None:
    """`count` requests at 20 a second, one in 10 a 503, while another client polls `polled`
    as fast as it is answered (apart, so a slow poll on a busy machine never delays the
    scripted requests)."""
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=url, timeout=10) as poller:
            while not done.is_set():
                for path in polled:
                    poller.get(path, headers=AUTH)
                time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    start = time.monotonic()
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            for n in range(count):
                if n % 10 == 0:
                    assert client.post("/orders").status_code == 503
                else:
                    assert client.get(f"/orders/{n}").status_code == 200
                time.sleep(max(0.0, start + (n + 1) / 20 - time.monotonic()))
    finally:
        done.set()
        poller.join(10)


def page_figure(url: str) -> float:
    """Requests per second as the status page shows it, in Chromium."""
    chromium = require_binary("chromium", "chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/observability")
            page.wait_for_selector("#token-form:not([hidden])")
            page.fill("#token-input", TOKEN)
            page.click("#token-submit")
            selector = ".tile[data-series='http_requests_per_second']"
            page.wait_for_selector(f"{selector}[data-value]:not([data-value=''])")
            assert page.get_attribute("#watching", "data-watching") == "self"
            return float(page.get_attribute(selector, "data-value") or "nan")
        finally:
            browser.close()


def scrape_sum(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))


def test_the_app_watches_itself_once_for_the_host(tmp_path: Path) -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    with orders(tmp_path) as url, httpx.Client(base_url=url, timeout=10) as client:
        # The token applies as on the sidecar; the page itself is public (it holds no data).
        assert client.get(f"{API}/health/full").status_code == 401
        page = client.get("/observability")
        assert page.status_code == 200 and "exporter status" in page.text
        paths = [p for p, ops in client.get("/openapi.json").json()["paths"].items()
                 if p.startswith(API) and "get" in ops and "{" not in p]
        assert len(paths) >= 14
        # 20 requests a second for 12 s, one in 10 a 503, spread over both workers; the page's
        # API is polled meanwhile (by the test and by Chromium) and must not count.
        with ThreadPoolExecutor(1) as background:
            running = background.submit(traffic, url, paths[:2], 240)
            time.sleep(7.0)
            tile = page_figure(url)
            current = client.get(f"{API}/metrics", headers=AUTH).json()["current"]
            running.result()
        assert tile == pytest.approx(20, rel=0.05)
        assert current["qps"] == pytest.approx(20, rel=0.05), current
        # One request in 10 fails: 8 of the ~80 in the 4 s window, give or take the one at its edge.
        assert current["error_rate"] == pytest.approx(0.1, abs=0.015), current
        for path in paths:  # every route answers, from whichever worker
            assert client.get(path, headers=AUTH).status_code in (200, 503), path
        scrape = client.get("/metrics").text
        assert scrape_sum(scrape, 'http_requests_total{method="GET",route="/orders/{order_id}"') \
            == 216
        assert f'route="{API}' not in scrape and 'route="/observability"' not in scrape
        # Probes every 0.2 s for the host: one worker probes, not two.
        first = scrape_sum(scrape, "dependency_probe_duration_seconds_count")
        time.sleep(4.0)
        later = scrape_sum(client.get("/metrics").text, "dependency_probe_duration_seconds_count")
        assert 4.0 / 0.2 * 0.6 <= later - first <= 4.0 / 0.2 * 1.3, (first, later)
        state = json.loads((tmp_path / "prom" / "exporter-observability.json").read_text())
        health = client.get(f"{API}/health/full", headers=AUTH).json()
        cache = next(c for c in health["checks"] if c["name"] == "cache")
        assert cache["status"] == "healthy" and cache["details"]["up"] is True
        points = state["points"]
        # One history for the host: a point every 0.5 s, not two.
        assert 0.4 <= (points[-1]["ts"] - points[-9]["ts"]) / 8 <= 0.6
