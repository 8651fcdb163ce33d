"""The status page in real headless Chromium (Debian's), driven by Playwright, on a real sidecar."""

from __future__ import annotations

import time
import uuid
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, require_binary, run_sidecar

TOKEN = "page-token-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
THRESHOLDS = """\
version: 1
thresholds:
  error_rate:
    alert: HighErrorRate
    signal: http_error_ratio
    above: 0.05
    for: 2s
    severity: critical
    summary: More than 5 % of HTTP responses are 5xx errors
  api_latency:
    alert: HighApiLatency
    signal: http_latency_p95_seconds
    above: 0.5
    for: 1m
    severity: warning
    summary: API latency p95 above 500 ms
  cpu:
    alert: HighCpuUsage
    signal: cpu_usage_ratio
    above: 0.95
    for: 5m
    severity: warning
    summary: CPU usage above 95 %
"""


def to_fixed(value: float, digits: int) -> str:
    """JavaScript's `Number.prototype.toFixed`: the exact binary value, ties away from zero.

    Python's format rounds ties to even (476.25 -> '476.2'), toFixed rounds them up ('476.3').
    """
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def shown(value: float | None, unit: str) -> str:
    """How the page writes a value (the same rules as its `format`)."""
    if value is None:
        return "\u2013"  # an en dash
    if unit == "ratio":
        return f"{to_fixed(value * 100, 1)} %"
    if unit == "seconds":
        return f"{to_fixed(value * 1000, 1)} ms"
    if unit == "per_second":
        return f"{to_fixed(value, 2)} req/s"
    return to_fixed(value, 0)  # Math.round on the non-negative counts shown here


def api_value(body: dict[str, Any], series_id: str) -> float | None:
    """The figure of `series_id` (signal[:subject]) in the dashboard's `metrics.signals`."""
    signal, _, subject = series_id.partition(":")
    return body["metrics"]["signals"][signal].get(subject)  # type: ignore[no-any-return]


SNAPSHOT = """() => ({
  generated: document.getElementById("updated").dataset.generatedAt,
  overall: document.getElementById("overall").dataset.status,
  tiles: [...document.querySelectorAll(".tile")].map((t) => ({
    id: t.dataset.series, unit: t.dataset.unit, value: t.dataset.value,
    text: t.querySelector(".value").textContent,
    threshold: t.querySelector("line.threshold")?.dataset.threshold ?? null,
    points: t.querySelectorAll("polyline").length })),
  checks: [...document.querySelectorAll(".check")].map((c) => [c.dataset.check,
    c.dataset.status, c.querySelector(".reason").textContent]),
})"""


@pytest.fixture
def sidecar(tmp_path: Path) -> Any:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(THRESHOLDS)
    env = {
        "EXPORTER_API_TOKEN": TOKEN, "EXPORTER_LOG_STDOUT": "false",
        "EXPORTER_THRESHOLDS_FILE": str(thresholds),
        "EXPORTER_HISTORY_INTERVAL_SECONDS": "0.5", "EXPORTER_DEMO_RATE": "20",
        "EXPORTER_DEMO_ERROR_RATIO": "0",
    }
    with run_sidecar(tmp_path, env={**env, "EXPORTER_DEMO": "true"}) as server:
        yield server


def test_the_status_page_in_chromium(sidecar: RunningServer, tmp_path: Path) -> None:
    chromium = require_binary("chromium", "chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    problems: list[str] = []
    responses: list[Any] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2000})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("response", lambda r: responses.append(r) if "/dashboard" in r.url else None)
            page.goto(sidecar.url + "/?refresh=1")

            # The token is asked for once, before any API call.
            page.wait_for_selector("#token-form:not([hidden])")
            assert responses == []
            page.fill("#token-input", TOKEN)
            page.click("#token-submit")
            page.wait_for_selector(
                "#overall[data-status='healthy'], #overall[data-status='degraded']")
            page.wait_for_selector(".tile[data-series='http_requests_per_second'][data-value]:not([data-value=''])")

            check_numbers_match_the_api(page, responses)

            # A forced error shows in the error list and opens its detail.
            assert httpx.get(sidecar.url + "/demo/boom", timeout=5).status_code == 500
            link = page.wait_for_selector("tr[data-error-id] a:has-text('demo boom')",
                                          timeout=15_000)
            assert link is not None
            link.click()
            page.wait_for_selector("#error-detail h3:has-text('RuntimeError: demo boom')")

            # An alert pushed over its threshold shows as firing.
            reply = httpx.put(sidecar.url + "/demo/config", timeout=5,
                              json={"error_ratio": 1.0, "slow_seconds": 0.6, "rate": 40})
            assert reply.status_code == 200
            page.wait_for_selector(".alert-row[data-alert='HighErrorRate'][data-state='firing']",
                                   timeout=20_000)
            page.wait_for_selector("#overall[data-status='unhealthy']", timeout=10_000)
            page.wait_for_selector(".slow-row", timeout=15_000)
            over = page.get_attribute(".tile[data-series='http_error_ratio']", "data-over")
            assert over == "true"

            check_live_tail(page, sidecar)
            check_numbers_match_the_api(page, responses)
            page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)

            # A phone: nothing wider than the screen; the token is still in this tab's session.
            page.set_viewport_size({"width": 390, "height": 844})
            page.reload()
            page.wait_for_selector(".tile[data-series='cpu_usage_ratio']")
            assert page.is_hidden("#token-form")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390
            page.screenshot(path=str(tmp_path / "status-page-phone.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []


def check_numbers_match_the_api(page: Any, responses: list[Any]) -> None:
    """Every figure on the page is the one of the dashboard answer it was drawn from."""
    snapshot = page.evaluate(SNAPSHOT)
    bodies = {}
    for response in list(responses):
        try:
            body = response.json()
        except Exception:  # a response the page abandoned when it reloaded
            continue
        bodies[body["generated_at"]] = body
    body = bodies[snapshot["generated"]]
    assert snapshot["overall"] == body["health"]["status"]
    assert snapshot["checks"] == [[c["name"], c["status"], c["reason"]]
                                  for c in body["health"]["checks"]]
    ids = [t["id"] for t in snapshot["tiles"]]
    assert ids[:6] == ["cpu_usage_ratio", "memory_usage_ratio", "disk_usage_ratio:/",
                       "http_requests_per_second", "http_error_ratio", "http_latency_p95_seconds"]
    for tile in snapshot["tiles"]:
        expected = api_value(body, tile["id"])
        assert tile["text"] == shown(expected, tile["unit"]), tile
        if expected is None:
            assert tile["value"] == ""
        else:
            assert float(tile["value"]) == expected, tile
    by_id = {t["id"]: t for t in snapshot["tiles"]}
    assert float(by_id["http_error_ratio"]["threshold"]) == 0.05  # the test's thresholds file
    assert float(by_id["cpu_usage_ratio"]["threshold"]) == 0.95
    assert by_id["cpu_usage_ratio"]["points"] >= 1


def check_live_tail(page: Any, server: RunningServer) -> None:
    """A line written now appears in the tail; while paused it is held, then shown."""
    page.wait_for_selector("#tail-state:has-text('live')")
    marker = "tail-" + uuid.uuid4().hex
    reply = httpx.post(server.url + "/api/v1/logs/write", headers=AUTH, timeout=5,
                       json={"message": f"{marker} written by the test", "level": "warning"})
    assert reply.status_code == 202
    page.wait_for_selector(f"#tail li[data-level='WARNING']:has-text('{marker}')")

    page.click("#tail-pause")
    held = "held-" + uuid.uuid4().hex
    httpx.post(server.url + "/api/v1/logs/write", headers=AUTH, timeout=5,
               json={"message": held})
    page.wait_for_selector("#tail-pause:has-text('new')")
    time.sleep(0.3)
    assert page.locator(f"#tail li:has-text('{held}')").count() == 0
    page.click("#tail-pause")
    page.wait_for_selector(f"#tail li:has-text('{held}')")
    # The page's own tail connection is not news in its own tail.
    own = page.locator("#tail li:has-text('/api/v1/observability/logs/stream')")
    assert own.count() == 0

    # Lines held under one filter are dropped when Apply switches the view.
    page.click("#tail-pause")
    stale = "stale-" + uuid.uuid4().hex
    httpx.post(server.url + "/api/v1/logs/write", headers=AUTH, timeout=5,
               json={"message": stale})
    page.wait_for_selector("#tail-pause:has-text('new')")
    page.click("#tail-filters button[type='submit']")
    page.wait_for_selector("#tail-pause:has-text('Resume')")
    page.click("#tail-pause")
    page.wait_for_selector("#tail-state:has-text('live')")
    time.sleep(0.3)
    assert page.locator(f"#tail li:has-text('{stale}')").count() == 0
