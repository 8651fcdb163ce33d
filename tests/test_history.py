"""History reads the registry itself and evaluates every signal over the rules' window: rates
from the counters, percentiles from the buckets, gauges at their newest sample."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry

from exporter.app import instrument
from exporter.config import MAX_SAMPLES, load_settings
from exporter.health.history import History
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


def _history(registry: CollectorRegistry, clock: Clock, window: float = 60, **kw: float) -> (
        History):
    return History(registry, signal_window=kw.get("signal_window", 20), interval=10,
                   window=window, clock=clock, monotonic=clock)


def test_rates_come_from_the_counters_over_the_window(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    client = traffic
    clock = Clock()
    history = _history(registry, clock, signal_window=10)
    client.get("/ok")  # both series exist before the first point: rate() needs two samples
    client.get("/fail")
    first = history.record()
    assert first.value("http_requests_per_second") is None  # one frame: no rate yet
    assert first.value("cpu_usage_ratio") is not None
    assert first.value("disk_usage_ratio", (("mountpoint", "/"),)) is not None
    for _ in range(18):
        client.get("/ok")
    client.get("/fail")
    client.get("/fail")
    clock.now += 10
    second = history.record()
    # 20 requests in the 10 s window, 2 of them 503s.
    assert second.value("http_requests_per_second") == pytest.approx(2.0)
    assert second.value("http_error_ratio") == pytest.approx(0.1)
    p50 = second.value("http_latency_p50_seconds")
    assert p50 is not None and 0 < p50 <= 0.1
    p99 = second.value("http_latency_p99_seconds")
    assert p99 is not None and p99 <= 0.1


def test_a_series_first_seen_counts_from_its_second_sample_as_in_prometheus(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    clock = Clock()
    history = _history(registry, clock, signal_window=10)
    traffic.get("/ok")
    history.record()
    for _ in range(9):
        traffic.get("/ok")
    traffic.get("/fail")  # a new series: rate() has one sample of it, which counts nothing
    clock.now += 10
    point = history.record()
    assert point.value("http_requests_per_second") == pytest.approx(0.9)
    assert point.value("http_error_ratio") == 0.0


def test_an_idle_window_has_a_rate_of_zero_and_no_error_ratio_or_latency(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    traffic.get("/ok")
    clock = Clock()
    history = _history(registry, clock)
    history.record()
    clock.now += 10
    idle = history.record()
    assert idle.value("http_requests_per_second") == 0.0
    assert idle.value("http_error_ratio") is None
    assert idle.value("http_latency_p95_seconds") is None


def test_a_rate_covers_the_window_not_the_last_interval(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    """Traffic that stopped still counts until it leaves the window, extrapolated to the
    window's start as rate() does (by half an interval where no sample is near it)."""
    clock = Clock()
    history = _history(registry, clock, signal_window=30)
    for _ in range(100):
        traffic.get("/ok")
    history.record()
    for _ in range(30):
        traffic.get("/ok")
    rates = []
    for _ in range(4):
        clock.now += 10
        rates.append(history.record().value("http_requests_per_second"))
    assert rates == pytest.approx([1.5, 1.5, 1.0, 0.0])


def test_the_ring_keeps_the_history_window(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    clock = Clock()
    history = _history(registry, clock, window=30)
    for _ in range(6):
        traffic.get("/ok")
        history.record()
        clock.now += 10
    points = history.points()
    assert len(points) == 4  # 30 s of 10 s steps, both ends included
    assert [p.ts for p in points] == [1_000_020.0, 1_000_030.0, 1_000_040.0, 1_000_050.0]
    assert len(history.points(10)) == 2
    # One request every 10 s, over the 20 s window.
    assert points[-1].value("http_requests_per_second") == pytest.approx(0.1)


def test_sampler_runs_callbacks_and_survives_a_failing_one(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[float] = []

    def broken(_: object) -> None:
        raise RuntimeError("boom")

    history = History(registry, signal_window=0.1, interval=0.05, window=1)
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
    history = History(registry, signal_window=20, interval=10, window=60)
    assert history.record().value("cpu_usage_ratio") == pytest.approx(0.5)
    assert registry.get_sample_value("system_cpu_usage_ratio") == pytest.approx(0.25)
    # Since the history's own previous read: 100 busy of 200, whatever was scraped between.
    assert history.record().value("cpu_usage_ratio") == pytest.approx(0.5)


def test_rates_and_windows_use_the_monotonic_clock(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    wall, steady = Clock(), Clock(50.0)
    history = History(registry, signal_window=10, interval=10, window=60, clock=wall,
                      monotonic=steady)
    traffic.get("/ok")
    history.record()
    for _ in range(20):
        traffic.get("/ok")
    wall.now -= 3600  # an NTP step back between the points
    steady.now += 10
    point = history.record()
    assert point.value("http_requests_per_second") == pytest.approx(2.0)
    assert point.ts == wall.now  # timestamps stay wall-clock, for people


def test_the_ring_size_is_capped() -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_SAMPLES}"):
        History(CollectorRegistry(), signal_window=1, interval=0.05, window=7 * 86400)


def test_an_instance_equal_to_the_overview_holds_no_copy_of_it() -> None:
    from exporter.health.history import _shared

    values = {"qps": {(): 2.0}, "cpu": {(): 0.5}}
    instances = {"a:1": {"qps": {(): 2.0}, "cpu": {(): 0.25}}, "b:1": {"qps": {(): 1.0}}}
    shared = _shared(instances, values)
    assert shared == instances  # the same values
    assert shared["a:1"]["qps"] is values["qps"]  # equal: the overview's own mapping
    assert shared["a:1"]["cpu"] is not values["cpu"] and shared["b:1"]["qps"] == {(): 1.0}


def test_points_hold_what_did_not_change_once(
    registry: CollectorRegistry, traffic: SyncClient
) -> None:
    """The hour of points shares a signal's mapping with the point before when it is equal,
    and one copy of each label set: the values read the same as evaluated afresh."""
    clock = Clock()
    history = _history(registry, clock, window=600, signal_window=20)
    for _ in range(3):
        traffic.get("/ok")
        clock.now += 10
        history.record()
    clock.now += 10
    still = history.record()  # nothing since: rates over the window change, the rest not
    clock.now += 10
    again = history.record()
    shared = [name for name in again.values if again.values[name] is still.values[name]]
    assert shared, "no mapping was shared with the point before"
    for name in shared:
        assert dict(again.values[name]) == dict(still.values[name])
    for _ in range(5):
        traffic.get("/ok")
    clock.now += 10
    changed = history.record()
    assert changed.values != again.values  # the requests show
    requests = [name for name, mapping in changed.values.items()
                if mapping is not again.values.get(name) and mapping]
    assert requests
    for name in requests:  # a changed mapping still holds the label sets kept before
        for labels in changed.values[name]:
            before = [k for k in again.values.get(name, {}) if k == labels]
            assert all(k is labels for k in before)
    fresh = _history(registry, Clock(clock.now))  # evaluating afresh reads the same values
    assert fresh.record().values.keys() == changed.values.keys()
