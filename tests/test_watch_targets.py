"""The sidecar watches other apps: it scrapes their /metrics, sums them, and says which are down."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.config import SettingsError, load_settings
from exporter.config.targets import parse_file_sd, parse_targets
from exporter.health.scrape import NotPrometheusText, parse_samples
from exporter.signals.frames import parse_labels
from tests.asgi import SyncClient, serve_in_process, serve_in_thread
from tests.watched_apps import shop

API = "/api/v1/observability"
THRESHOLDS = """
version: 1
thresholds:
  error_rate:
    alert: HighErrorRate
    signal: http_error_ratio
    above: 0.05
    for: 0s
    severity: critical
    summary: errors
render:
  rate_window: 3s
"""


def test_targets_take_urls_host_port_and_json() -> None:
    listed = parse_targets("10.0.0.5:8000, https://api.example.com/internal/metrics")
    assert [(t.url, t.instance) for t in listed] == [
        ("http://10.0.0.5:8000/metrics", "10.0.0.5:8000"),
        ("https://api.example.com/internal/metrics", "api.example.com:443/internal/metrics"),
    ]
    assert [t.instance for t in parse_targets('["127.0.0.1:1", "127.0.0.1:2"]')] == [
        "127.0.0.1:1", "127.0.0.1:2"]
    with pytest.raises(ValueError, match="listed twice"):
        parse_targets("127.0.0.1:1,http://127.0.0.1:1/metrics")


def test_a_bad_target_stops_start_up_naming_the_variable_and_the_value() -> None:
    with pytest.raises(SettingsError, match=r"EXPORTER_TARGETS: 'ftp://x' is not a /metrics URL"):
        load_settings(targets="ftp://x")


def test_file_sd_sets_scheme_and_path_and_keeps_labels() -> None:
    text = json.dumps([{"targets": ["app-1:9000"],
                        "labels": {"__metrics_path__": "/m", "env": "prod"}}])
    (target,) = parse_file_sd(text, "t.json")
    assert (target.url, target.instance, target.labels) == (
        "http://app-1:9000/m", "app-1:9000/m", {"env": "prod"})
    with pytest.raises(ValueError, match=r"t\.yaml: entry 0: needs 'targets'"):
        parse_file_sd("- labels: {}\n", "t.yaml")


def test_the_parser_reads_what_is_wanted_and_refuses_html() -> None:
    text = (
        "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
        'http_requests_total{route="/a\\"b",status="200"} 7.0\n'
        'http_requests_total{route="/{id}",status="500"} 2 1700000000000\n'
        'http_requests_total{route="/x",status="200"} 5.0 # {trace_id="a}b"} 0.002 1.7e9\n'
        "python_gc_objects_collected_total{generation=\"0\"} 100.0\n"
    )
    samples, lines = parse_samples(text, frozenset({"http_requests_total"}))
    assert lines == 4
    assert [(name, parse_labels(series), value) for series, name, value in samples] == [
        ("http_requests_total", {"route": '/a"b', "status": "200"}, 7.0),
        ("http_requests_total", {"route": "/{id}", "status": "500"}, 2.0),
        ("http_requests_total", {"route": "/x", "status": "200"}, 5.0)]  # not the exemplar
    with pytest.raises(NotPrometheusText, match="not Prometheus text: '<!doctype html>"):
        parse_samples("<!doctype html>\n<html></html>", frozenset({"up"}))


def html_app() -> FastAPI:
    app = FastAPI()

    @app.get("/metrics", response_class=HTMLResponse)
    async def page() -> str:
        return "<!doctype html><html><body>a login page</body></html>"

    return app


@contextmanager
def sidecar(tmp_path: Path, targets: list[str], **more: Any) -> Iterator[SyncClient]:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(THRESHOLDS)
    settings = load_settings(
        targets=",".join(targets), history_interval_seconds=0.25, thresholds_file=thresholds,
        scrape_timeout_seconds=1.0, log_stdout=False, log_dir=tmp_path / "logs",
        data_dir=tmp_path / "data", **more)
    with serve_in_process(create_app(settings, CollectorRegistry())) as client:
        yield client


def wait_for(client: SyncClient, path: str, done: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(path).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def drive(urls: list[str], per_second: float, seconds: float, broken_every: int = 0) -> int:
    """Requests spread evenly over `urls` at `per_second` in all; returns how many."""
    sent = 0
    start = time.monotonic()
    with httpx.Client(timeout=5) as client:
        while time.monotonic() - start < seconds:
            url = urls[sent % len(urls)]
            path = "/broken" if broken_every and sent % broken_every == 0 else "/work"
            client.get(url + path)
            sent += 1
            time.sleep(max(0.0, start + sent / per_second - time.monotonic()))
    return sent


def test_two_instances_are_summed_and_one_down_is_named(tmp_path: Path) -> None:
    with ExitStack() as apps:
        first = apps.enter_context(serve_in_thread(shop()))
        second_stack = ExitStack()
        second = second_stack.enter_context(serve_in_thread(shop()))
        with sidecar(tmp_path, [first, second]) as client:
            targets = wait_for(client, f"{API}/targets",
                               lambda b: all(t["up"] for t in b["targets"]))
            assert targets["watching"] == "targets" and len(targets["targets"]) == 2
            drive([first, second], 40, 1.0)  # both series exist in the window before timing
            drive([first, second], 40, 4.0)
            current = client.get(f"{API}/metrics").json()["current"]
            assert current["qps"] == pytest.approx(40, rel=0.05), current["qps"]
            a, b = (t["instance"] for t in targets["targets"])
            mine = client.get(f"{API}/metrics", params={"instance": a}).json()["current"]
            assert mine["instance"] == a and mine["qps"] == pytest.approx(20, rel=0.05)
            assert client.get(f"{API}/metrics", params={"instance": "x:1"}).status_code == 404
            second_stack.close()  # the second instance goes away
            health = wait_for(client, f"{API}/health/full", lambda h: any(
                c["name"] == "targets" and c["status"] == "degraded" for c in h["checks"]))
            check = next(c for c in health["checks"] if c["name"] == "targets")
            assert check["reason"] == f"{b}: connection refused"
            assert check["details"]["up"] == 1 and check["details"][a] == "up"
            time.sleep(3.5)  # the second's last samples leave the 3 s window
            drive([first], 20, 4.0)
            current = client.get(f"{API}/metrics").json()["current"]
            assert current["qps"] == pytest.approx(20, rel=0.05), current["qps"]


def test_a_target_answering_html_is_not_prometheus_text(tmp_path: Path) -> None:
    with serve_in_thread(html_app()) as page, sidecar(tmp_path, [page]) as client:
        health = wait_for(client, f"{API}/health/full", lambda h: any(
            c["name"] == "targets" and c["status"] == "degraded" for c in h["checks"]))
    check = next(c for c in health["checks"] if c["name"] == "targets")
    instance = page.removeprefix("http://")
    assert check["reason"] == f"{instance}: not Prometheus text: the answer is text/html"


def test_the_targets_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    listing = tmp_path / "targets.json"
    with serve_in_thread(shop()) as first, serve_in_thread(shop()) as second:
        listing.write_text(json.dumps([{"targets": [first.removeprefix("http://")]}]))
        with sidecar(tmp_path, [], targets_file=listing) as client:
            wait_for(client, f"{API}/targets", lambda b: [t["up"] for t in b["targets"]] == [
                True])
            listing.write_text(json.dumps([{"targets": [
                first.removeprefix("http://"), second.removeprefix("http://")],
                "labels": {"env": "test"}}]))
            body = wait_for(client, f"{API}/targets",
                            lambda b: [t["up"] for t in b["targets"]] == [True, True])
            assert body["targets"][1]["labels"] == {"env": "test"}
            listing.write_text("[{not json")
            body = wait_for(client, f"{API}/targets", lambda b: b["file_error"] is not None)
            assert len(body["targets"]) == 2  # the last good list stays
            assert "not valid JSON or YAML" in body["file_error"]
