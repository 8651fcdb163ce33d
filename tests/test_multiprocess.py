"""Several uvicorn workers: a scrape of any worker reports the totals over all of them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import require_tcp, run_sidecar

REQUESTS = 400


def sample(text: str, prefix: str) -> float:
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    ]
    assert values, f"no sample starting with {prefix}"
    return sum(values)


def test_four_workers_report_exact_totals(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale file from an earlier run")
    require_tcp("127.0.0.1", 6379, "Redis")
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "EXPORTER_DEMO_RATE": "0",
        "EXPORTER_DEPENDENCIES": "cache=redis://127.0.0.1:6379/0",
        "EXPORTER_PROBE_INTERVAL_SECONDS": "0.2",
        "EXPORTER_HISTORY_INTERVAL_SECONDS": "0.5",
    }
    with run_sidecar(tmp_path, ["--workers", "4"], env={**env, "EXPORTER_DEMO": "true"}) as server:
        for _ in range(REQUESTS):
            # A new connection each time, so the kernel spreads requests over the workers.
            with httpx.Client(timeout=10) as client:
                assert client.get(server.url + "/demo/fast").status_code == 200
        scrapes = []
        for _ in range(8):
            with httpx.Client(timeout=10) as client:
                scrapes.append(client.get(server.url + "/metrics").text)
        time.sleep(1.5)  # a history sample or two after the last request
        histories = []
        for _ in range(4):  # whichever worker answers
            with httpx.Client(timeout=10) as client:
                reply = client.get(server.url + "/api/v1/observability/metrics?window=1h")
                histories.append(reply.json()["current"])
        pids_with_counts = {path.name.split("_")[-1] for path in metrics_dir.glob("counter_*.db")}
        assert len(list(metrics_dir.glob("gauge_livesum_*.db"))) >= 2
    # Each worker dropped its in-progress gauge file when it stopped (SIGTERM, graceful).
    assert list(metrics_dir.glob("gauge_livesum_*.db")) == []
    for text in scrapes:
        assert (
            sample(text, 'http_requests_total{method="GET",route="/demo/fast",status="200"}')
            == REQUESTS
        )
        assert (
            sample(text, 'http_request_duration_seconds_count{method="GET",route="/demo/fast"}')
            == REQUESTS
        )
        assert "system_cpu_usage_ratio" in text
        # The answering worker's own gauges are served beside the shared files, once...
        assert text.count('dependency_up{kind="redis",name="cache"}') == 1
        assert text.count("python_info{") == 1
        # ...but not its per-process figures, which would pass for the whole service's.
        assert "process_resident_memory_bytes" not in text
    # The history (status page, in-process alerts) sees every worker's requests, not one's:
    # every request falls in the rate's 5-minute window, so rate x window counts them all
    # (rate() extrapolates back to the counters' zero, where they started).
    for current in histories:
        counted = current["qps"] * 300
        assert abs(counted - REQUESTS) <= REQUESTS * 0.1, counted
    assert "999999.db" not in pids_with_counts  # the stale file was cleared at start
    assert len(pids_with_counts) >= 2, "requests were not spread over several workers"
