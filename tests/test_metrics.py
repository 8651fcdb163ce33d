"""The in-process HTTP series agree with prometheus-client's own Histogram and Counter."""

from __future__ import annotations

import random
import threading

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.config import DEFAULT_BUCKETS
from exporter.metrics import HttpCollector, MultiprocessHttpMetrics, http_metrics_for


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for metric in registry.collect()
        for s in metric.samples
        if s.name == name
    }


def test_histogram_matches_prometheus_client_including_bucket_edges() -> None:
    ours_registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    ours = HttpCollector(DEFAULT_BUCKETS, ours_registry)
    reference = Histogram(
        "http_request_duration_seconds", "ref", ("method", "route"),
        buckets=DEFAULT_BUCKETS, registry=reference_registry,
    )
    rng = random.Random(7)
    values = [rng.expovariate(4.0) for _ in range(5000)] + list(DEFAULT_BUCKETS) + [0.0, 99.0]
    for value in values:
        series = ours.series("GET", "/r")
        series.start()
        series.finish(200, value, "t")
        reference.labels("GET", "/r").observe(value)
    for suffix in ("_bucket", "_count", "_sum"):
        name = "http_request_duration_seconds" + suffix
        assert samples(ours_registry, name) == samples(reference_registry, name), suffix


def test_counts_by_status_and_in_progress() -> None:
    registry = CollectorRegistry()
    metrics = HttpCollector(DEFAULT_BUCKETS, registry)
    series = metrics.series("POST", "/orders")
    for status in (201, 201, 409, 500):
        series.start()
        series.finish(status, 0.01, "t")
    series.start()  # one still running
    get = registry.get_sample_value
    assert get("http_requests_total", {"method": "POST", "route": "/orders", "status": "201"}) == 2
    assert get("http_requests_total", {"method": "POST", "route": "/orders", "status": "409"}) == 1
    assert get("http_requests_in_progress", {"method": "POST", "route": "/orders"}) == 1


def test_exemplars_are_the_latest_trace_of_each_bucket_and_parse_as_openmetrics() -> None:
    registry = CollectorRegistry()
    series = HttpCollector(DEFAULT_BUCKETS, registry).series("GET", "/r")
    for seconds, trace_id in ((0.004, "a" * 32), (0.003, "b" * 32), (0.7, "c" * 32)):
        series.start()
        series.finish(200, seconds, trace_id)
    text = openmetrics(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    buckets = {
        s.labels["le"]: s for s in families["http_request_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    first = buckets["0.005"].exemplar
    assert first is not None
    assert first.labels == {"trace_id": "b" * 32} and first.value == 0.003
    slow = buckets["0.75"].exemplar
    assert slow is not None and slow.labels == {"trace_id": "c" * 32}
    assert buckets["0.01"].exemplar is None


def test_concurrent_threads_lose_no_count() -> None:
    registry = CollectorRegistry()
    metrics = HttpCollector(DEFAULT_BUCKETS, registry)

    def work() -> None:
        for _ in range(5000):
            series = metrics.series("GET", "/hot")
            series.start()
            series.finish(200, 0.02, "t")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    labels = {"method": "GET", "route": "/hot"}
    assert registry.get_sample_value("http_request_duration_seconds_count", labels) == 40000
    assert registry.get_sample_value("http_requests_in_progress", labels) == 0


def test_one_registry_gets_one_set_of_metrics() -> None:
    registry = CollectorRegistry()
    first = http_metrics_for(registry, DEFAULT_BUCKETS)
    assert http_metrics_for(registry, DEFAULT_BUCKETS) is first
    other = http_metrics_for(CollectorRegistry(), DEFAULT_BUCKETS, multiprocess=True)
    assert isinstance(first, HttpCollector)
    assert isinstance(other, MultiprocessHttpMetrics)
