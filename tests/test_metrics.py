"""The in-process HTTP series agree with prometheus-client's own Histogram and Counter."""

from __future__ import annotations

import random
import threading

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.config import DEFAULT_BUCKETS
from exporter.http.metrics import HttpCollector, MultiprocessHttpMetrics, http_metrics_for


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
        "http_request_duration_seconds",
        "ref",
        ("method", "route"),
        buckets=DEFAULT_BUCKETS,
        registry=reference_registry,
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
        s.labels["le"]: s
        for s in families["http_request_duration_seconds"].samples
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


def _traffic(metrics: HttpCollector, rounds: int = 3) -> None:
    rng = random.Random(11)
    for _ in range(rounds):
        for route in ("/a", '/we"ird\\route', "/items/{item_id}"):
            for method in ("GET", "POST"):
                series = metrics.series(method, route)
                for status in (200, 404, 500):
                    series.start()
                    series.finish(status, rng.expovariate(3.0), f"{rng.getrandbits(128):032x}")


def _parsed(
    text: str, openmetrics_format: bool
) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    from prometheus_client.parser import text_string_to_metric_families as classic_parser

    parser = text_string_to_metric_families if openmetrics_format else classic_parser
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in parser(text)
        for s in family.samples
    }


def test_rendered_text_says_what_the_samples_say_in_both_formats() -> None:
    from exporter.http.exposition import render

    registry = CollectorRegistry()
    metrics = HttpCollector(DEFAULT_BUCKETS, registry)
    _traffic(metrics)
    metrics.series("GET", "/a").start()  # one in flight
    expected = {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in metrics.collect()
        for s in family.samples
    }
    assert len(expected) > 100
    classic = render(registry, openmetrics=False).decode()
    assert _parsed(classic, False) == expected
    om = render(registry, openmetrics=True).decode()
    assert om.endswith("# EOF\n")
    assert _parsed(om, True) == expected
    exemplars = [
        s.exemplar for f in text_string_to_metric_families(om) for s in f.samples if s.exemplar
    ]
    assert exemplars and all(len(e.labels["trace_id"]) == 32 for e in exemplars)


def test_unchanged_series_reuse_their_text_and_changed_ones_do_not() -> None:
    from exporter.http.exposition import render

    registry = CollectorRegistry()
    metrics = HttpCollector(DEFAULT_BUCKETS, registry)
    _traffic(metrics, rounds=1)
    first = render(registry, openmetrics=False).decode()
    assert render(registry, openmetrics=False).decode() == first
    series = metrics.series("POST", "/a")
    series.start()
    series.finish(201, 0.3, "f" * 32)
    second = render(registry, openmetrics=False).decode()
    labels = {"method": "POST", "route": "/a", "status": "201"}
    assert registry.get_sample_value("http_requests_total", labels) == 1
    assert 'http_requests_total{method="POST",route="/a",status="201"} 1.0' in second
    assert 'http_request_duration_seconds_count{method="POST",route="/a"} 4.0' in second
    assert 'http_request_duration_seconds_count{method="GET",route="/a"} 3.0' in second
