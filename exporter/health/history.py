"""An in-process ring of samples read from the registry itself: one hour every 10 s by default.

Nothing is counted twice: QPS and error rate come from `http_requests_total` deltas, latency
quantiles from `http_request_duration_seconds_bucket` deltas (as Prometheus' histogram_quantile
computes them), host figures from the `system_*` gauges, probes from `dependency_*` / `queue_*`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from exporter.config import MAX_SAMPLES, ring_length
from exporter.host import cpu_reader

log = logging.getLogger("exporter.history")

@dataclass(frozen=True)
class Totals:
    """Cumulative HTTP counters at one instant, summed over every route, method and status."""

    requests: float = 0.0
    errors: float = 0.0  # status 5xx
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count), +Inf last


@dataclass(frozen=True)
class Sample:
    """What the registry said at `ts`, with rates over the interval since the previous sample."""

    ts: float  # wall-clock time (time.time()), for people and the API
    cpu: float | None = None
    memory: float | None = None
    disk: dict[str, float] = field(default_factory=dict)
    qps: float | None = None
    error_rate: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    dependency_latency: dict[str, float] = field(default_factory=dict)
    dependency_up: dict[str, bool] = field(default_factory=dict)
    dependency_kind: dict[str, str] = field(default_factory=dict)
    queue_depth: dict[str, float] = field(default_factory=dict)  # "backend/queue" -> depth
    totals: Totals = field(default_factory=Totals)
    # time.monotonic() at the read: rates and windows use it, so a wall-clock step (NTP) does
    # not distort them. None: use `ts`.
    monotonic: float | None = None

    @property
    def steady(self) -> float:
        """The time rates and windows are measured in."""
        return self.ts if self.monotonic is None else self.monotonic


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile from cumulative buckets, interpolated as Prometheus does; None if empty."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):  # the quantile lies above the last finite bound
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def _delta(now: float, before: float) -> float:
    # A counter that went down was reset (process restart): count from zero.
    return now - before if now >= before else now


def delta_buckets(
    now: Sequence[tuple[float, float]], before: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Bucket counts added between two cumulative snapshots."""
    old = dict(before)
    return [(le, _delta(count, old.get(le, 0.0))) for le, count in now]


def read_registry(
    registry: CollectorRegistry,
    ts: float,
    previous: Sample | None = None,
    monotonic: float | None = None,
) -> Sample:
    """One sample from `registry`; rates are computed against `previous` when given, over the
    `monotonic` time between the two (`ts` when not given)."""
    gauges: dict[str, float] = {}
    disk: dict[str, float] = {}
    dep_latency: dict[str, float] = {}
    dep_up: dict[str, bool] = {}
    dep_kind: dict[str, str] = {}
    depth: dict[str, float] = {}
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in registry.collect():
        for s in family.samples:
            name, labels = s.name, s.labels
            if name == "http_requests_total":
                requests += s.value
                if labels.get("status", "").startswith("5"):
                    errors += s.value
            elif name == "http_request_duration_seconds_bucket":
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif name in ("system_cpu_usage_ratio", "system_memory_usage_ratio"):
                gauges[name] = s.value
            elif name == "system_disk_usage_ratio":
                disk[labels.get("mountpoint", "")] = s.value
            elif name == "dependency_latency_seconds":
                dep_latency[labels["name"]] = s.value
            elif name == "dependency_up":
                dep_up[labels["name"]] = s.value == 1.0
                dep_kind[labels["name"]] = labels.get("kind", "")
            elif name == "queue_depth":
                depth[f"{labels['backend']}/{labels['queue']}"] = s.value
    totals = Totals(requests, errors, tuple(sorted(buckets.items())))
    qps = error_rate = p50 = p95 = p99 = None
    steady = ts if monotonic is None else monotonic
    if previous is not None and steady > previous.steady:
        stats = interval_stats(previous.totals, totals, steady - previous.steady)
        qps, error_rate, p50, p95, p99 = stats
    return Sample(
        ts, gauges.get("system_cpu_usage_ratio"), gauges.get("system_memory_usage_ratio"), disk,
        qps, error_rate, p50, p95, p99, dep_latency, dep_up, dep_kind, depth, totals, monotonic,
    )


def interval_stats(
    before: Totals, now: Totals, seconds: float
) -> tuple[float, float | None, float | None, float | None, float | None]:
    """(qps, error rate, p50, p95, p99) between two snapshots `seconds` apart."""
    requests = _delta(now.requests, before.requests)
    errors = min(_delta(now.errors, before.errors), requests)
    added = delta_buckets(now.buckets, before.buckets)
    return (
        requests / seconds if seconds > 0 else 0.0,
        errors / requests if requests > 0 else None,
        bucket_quantile(0.50, added),
        bucket_quantile(0.95, added),
        bucket_quantile(0.99, added),
    )


class History:
    """A bounded ring of `Sample`s, oldest first; `record()` appends one read from the registry."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        interval: float = 10.0,
        window: float = 3600.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        length = ring_length(window, interval)
        if length > MAX_SAMPLES:
            raise ValueError(
                f"{length} samples for {window:g} s every {interval:g} s; at most {MAX_SAMPLES}"
            )
        self.registry = registry
        self.interval = interval
        self.window = window
        self._clock = clock
        self._monotonic = monotonic
        self._ring: deque[Sample] = deque(maxlen=length)
        self._lock = threading.Lock()

    def record(self) -> Sample:
        """Read the registry now and append the sample; returns it."""
        with self._lock:
            previous = self._ring[-1] if self._ring else None
            with cpu_reader("history"):  # its own CPU window, apart from the scrapes'
                sample = read_registry(
                    self.registry, self._clock(), previous, self._monotonic()
                )
            self._ring.append(sample)
            return sample

    def samples(self, seconds: float | None = None) -> list[Sample]:
        """Samples of the last `seconds` (all of them when None), oldest first."""
        with self._lock:
            ring = list(self._ring)
        if seconds is None or not ring:
            return ring
        since = ring[-1].steady - seconds
        return [s for s in ring if s.steady >= since]

    def latest(self) -> Sample | None:
        """The newest sample, or None before the first one."""
        with self._lock:
            return self._ring[-1] if self._ring else None

    def over(self, seconds: float) -> tuple[float, float | None, float | None, float | None,
                                              float | None] | None:
        """(qps, error rate, p50, p95, p99) over the last `seconds`, or None with < 2 samples."""
        window = self.samples(seconds)
        if len(window) < 2:
            return None
        first, last = window[0], window[-1]
        return interval_stats(first.totals, last.totals, last.steady - first.steady)
