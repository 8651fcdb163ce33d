"""`make run` as a newcomer sees it: `exporter serve --demo` starts the sidecar and the demo shop
(its own process), and within 60 s the page in Chromium shows the shop's numbers, an error group
(an exception), a slow request and log lines in the live tail."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, require_binary, run_sidecar
from tests.test_status_page_browser import CHROMIUM_ARGS


def test_make_run_shows_the_demo_shop_within_a_minute(tmp_path: Path) -> None:
    chromium = require_binary("chromium", "chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    env = {"EXPORTER_DEMO_PORT": str(free_port()), "EXPORTER_LOG_STDOUT": "false"}
    started = time.monotonic()
    with run_sidecar(tmp_path, ["--demo"], env=env) as sidecar, \
            sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        problems: list[str] = []
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2400})
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(sidecar.url + "/")
            deadline = started + 60.0

            def shown() -> dict[str, object]:
                return page.evaluate("""() => ({
                  tiles: [...document.querySelectorAll('.tile')].map(
                    (t) => [t.dataset.series, t.dataset.value]),
                  errors: [...document.querySelectorAll('tr[data-error-id]')].map(
                    (r) => r.textContent),
                  slow: document.querySelectorAll('#slow tr:not(:has(.empty))').length,
                  tail: [...document.querySelectorAll('#tail li.line')].map((l) => l.textContent),
                  watching: document.getElementById('watching').textContent,
                })""")

            while True:
                seen = shown()
                tiles = dict(seen["tiles"])  # type: ignore[call-overload]
                ready = (tiles and all(v not in ("", None) for v in tiles.values())
                         and seen["errors"] and seen["slow"] and seen["tail"])
                if ready:
                    break
                assert time.monotonic() < deadline, seen
                time.sleep(1.0)
        finally:
            browser.close()
    waited = time.monotonic() - started
    print(f"make run: every tile, an error group, a slow request and the tail after {waited:.0f} s")
    assert {"cpu_usage_ratio", "http_requests_per_second", "http_error_ratio",
            "http_latency_p95_seconds", "database_latency_seconds:shop-db"} <= set(tiles)
    assert any("PaymentDeclined" in row for row in seen["errors"])  # type: ignore[union-attr]
    assert seen["watching"] == "1 of 1 targets up"
    assert problems == []


def test_ctrl_c_stops_the_sidecar_and_the_demo_shop(tmp_path: Path) -> None:
    port = free_port()
    with run_sidecar(tmp_path, ["--demo"], env={"EXPORTER_DEMO_PORT": str(port)}) as sidecar:
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
        sidecar.process.send_signal(signal.SIGINT)
        assert sidecar.process.wait(timeout=20) in (0, 130)
    with pytest.raises(httpx.ConnectError):  # the shop went with it
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    output = sidecar.output()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill-9"])
def test_the_demo_shop_goes_with_a_stopped_or_killed_sidecar(
    tmp_path: Path, how: signal.Signals
) -> None:
    port = free_port()
    with run_sidecar(tmp_path, ["--demo"], env={"EXPORTER_DEMO_PORT": str(port)}) as sidecar:
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
        sidecar.process.send_signal(how)
        sidecar.process.wait(timeout=20)
        deadline = time.monotonic() + 20
        while True:  # the shop drains its requests first: a few seconds at most
            try:
                httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            except httpx.ConnectError:
                break
            assert time.monotonic() < deadline, f"the demo shop outlived the sidecar's {how!r}"
            time.sleep(0.5)
    assert "Traceback" not in sidecar.output()
