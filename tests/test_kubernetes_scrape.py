"""One series set per pod, with several uvicorn workers in it: a real Prometheus scrapes a
real `exporter serve --workers 2` (multiprocess mode, as a pod would run it) with the scrape
settings and relabelings of the rendered ServiceMonitor and PodMonitor."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_sidecar
from tests.kubernetes_objects import committed_objects
from tests.prometheus_stack import query, run_prometheus

REQUESTS = 120


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _scrape_config(endpoint: dict[str, Any], job: str, target: str) -> dict[str, Any]:
    """What the operator generates for `endpoint`, for one static target: its path and
    relabelings, with the labels the operator itself adds (namespace, pod, job)."""
    return {
        "job_name": job,
        "scrape_interval": "1s",  # the rendered 15s, shortened for the test
        "metrics_path": endpoint["path"],
        "scheme": endpoint["scheme"],
        "static_configs": [{"targets": [target], "labels": {
            "namespace": "default", "pod": "app-7d4b9-x2x9q", "container": "app"}}],
        "relabel_configs": [{_snake(k): v for k, v in r.items()} for r in endpoint["relabelings"]],
    }


@pytest.mark.parametrize(("file", "key"), [("servicemonitor.yaml", "endpoints"),
                                           ("podmonitor.yaml", "podMetricsEndpoints")])
def test_a_pod_with_two_workers_is_one_series_set_labelled_with_its_service(
    tmp_path: Path, file: str, key: str
) -> None:
    (endpoint,) = committed_objects()[file]["spec"][key]
    metrics_dir = tmp_path / "multiproc"
    metrics_dir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "EXPORTER_DEMO_RATE": "0"}
    with run_sidecar(tmp_path, ["--workers", "2"], {**env, "EXPORTER_DEMO": "true"}) as app:
        for _ in range(REQUESTS):  # a new connection each time: the workers share them
            with httpx.Client(timeout=10) as client:
                assert client.get(app.url + "/demo/fast").status_code == 200
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2, "one worker took them all"
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": [_scrape_config(endpoint, f"monitoring/{file}",
                                                    app.url.removeprefix("http://"))]}
        selector = 'http_requests_total{route="/demo/fast"}'
        with run_prometheus(tmp_path, config) as prometheus:
            deadline = time.monotonic() + 20.0
            while True:
                _, series = query(prometheus, selector)
                if series or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert len(series) == 1, series  # one pod, one series: no worker or pid label
            labels = series[0]["metric"]
            assert labels["service"] == "app"
            assert (labels["namespace"], labels["pod"]) == ("default", "app-7d4b9-x2x9q")
            assert float(series[0]["value"][1]) == REQUESTS  # both workers' requests
            _, up = query(prometheus, 'up{service="app"}')
            assert [u["value"][1] for u in up] == ["1"]
