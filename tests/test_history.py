"""History reads the registry itself: rates from counter deltas, quantiles from bucket deltas."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry

from exporter.app import instrument
from exporter.config import MAX_SAMPLES, load_settings
from exporter.health.history import History, bucket_quantile
from exporter.health.sampler import HistorySampler
from tests.asgi import SyncClient, serve_in_process


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def traffic(registry: CollectorRegistry) -> Iterator[SyncClient]:
    with serve_in_process(traffic_app(registry), lifespan=False) as client:
        yield client


def traffic_app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/fail")
    async def fail() -> None:
        raise HTTPException(503, "down")

    settings = load_settings(histogram_buckets=[0.1, 0.5, 1.0], disk_paths=["/"])
    instrument(app, settings, registry)
    return app


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.1)
    assert bucket_quantile(0.7, buckets) == pytest.approx(0.1 + 0.4 * 20 / 40)
    assert bucket_quantile(0.95, buckets) == pytest.approx(0.5 + 0.5 * 5 / 10)
    assert bucket_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    # Above the last finite bound the answer is that bound, as histogram_quantile does.
    assert bucket_quantile(0.99, [(0.1, 1.0), (float("inf"), 10.0)]) == 0.1


def test_rates_come_from_counter_deltas(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    client = traffic
    clock = Clock()
    history = History(registry, interval=10, window=60, clock=clock, monotonic=clock)
    client.get("/ok")  # before the first sample: must not count in the interval
    first = history.record()
    assert first.qps is None and first.cpu is not None and "/" in first.disk
    for _ in range(18):
        client.get("/ok")
    client.get("/fail")
    client.get("/fail")
    clock.now += 10
    second = history.record()
    assert second.qps == pytest.approx(2.0)
    assert second.error_rate == pytest.approx(0.1)
    assert second.p50 is not None and 0 < second.p50 <= 0.1
    assert second.p99 is not None and second.p99 <= 0.1


def test_an_idle_interval_has_no_error_rate_or_latency(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    traffic.get("/ok")
    clock = Clock()
    history = History(registry, interval=10, window=60, clock=clock, monotonic=clock)
    history.record()
    clock.now += 10
    idle = history.record()
    assert idle.qps == 0.0 and idle.error_rate is None and idle.p95 is None


def test_ring_keeps_the_window_and_aggregates_over_it(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    client = traffic
    clock = Clock()
    history = History(registry, interval=10, window=30, clock=clock, monotonic=clock)
    for _ in range(6):
        client.get("/ok")
        history.record()
        clock.now += 10
    samples = history.samples()
    assert len(samples) == 4  # 30 s of 10 s steps, both ends included
    assert [s.ts for s in samples] == [1_000_020.0, 1_000_030.0, 1_000_040.0, 1_000_050.0]
    assert len(history.samples(10)) == 2
    stats = history.over(30)
    assert stats is not None and stats[0] == pytest.approx(3 / 30)


def test_sampler_runs_callbacks_and_survives_a_failing_one(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[float] = []

    def broken(_: object) -> None:
        raise RuntimeError("boom")

    history = History(registry, interval=0.05, window=1)
    sampler = HistorySampler(history, [broken, lambda s: seen.append(s.ts)])
    sampler.sample_once()
    assert len(seen) == 1 and "history callback failed" in caplog.text
    sampler.start()
    try:
        for _ in range(200):
            if len(seen) >= 3:
                break
            import time

            time.sleep(0.01)
    finally:
        sampler.stop()
        sampler.stop()
    assert len(seen) >= 3


def test_history_and_scrapes_keep_separate_cpu_windows(registry: CollectorRegistry) -> None:
    from collections import namedtuple

    from exporter.host import HostCollector

    times = namedtuple("times", "user idle")
    readings = iter([times(0, 0), times(50, 50), times(50, 150), times(150, 150)])
    clock = iter([0.0, 10.0, 11.0, 20.0])
    HostCollector(
        [], registry=registry, cpu_times=lambda: next(readings), clock=lambda: next(clock)
    )
    history = History(registry, interval=10, window=60)
    assert history.record().cpu == pytest.approx(0.5)
    assert registry.get_sample_value("system_cpu_usage_ratio") == pytest.approx(0.25)
    # Since the history's own previous read: 100 busy of 200, whatever was scraped between.
    assert history.record().cpu == pytest.approx(0.5)


def test_rates_and_windows_use_the_monotonic_clock(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    wall, steady = Clock(), Clock(50.0)
    history = History(registry, interval=10, window=60, clock=wall, monotonic=steady)
    history.record()
    for _ in range(20):
        traffic.get("/ok")
    wall.now -= 3600  # an NTP step back between the samples
    steady.now += 10
    sample = history.record()
    assert sample.qps == pytest.approx(2.0)
    assert sample.ts == wall.now  # timestamps stay wall-clock, for people
    assert len(history.samples(10)) == 2
    stats = history.over(60)
    assert stats is not None and stats[0] == pytest.approx(2.0)


def test_the_ring_size_is_capped() -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_SAMPLES}"):
        History(CollectorRegistry(), interval=0.05, window=7 * 86400)
