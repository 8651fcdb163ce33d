"""The HTTP metrics, created once per registry and shared by every app instrumented on it.

In a single process they live in `HttpCollector`: plain numbers a request appends without a
lock, folded into the histogram in batches and turned into metric families only when scraped
(far cheaper per request than prometheus-client's Counter/Histogram objects, which lock and
validate on every call). In
multiprocess mode the numbers must live in prometheus-client's shared files, so
`MultiprocessHttpMetrics` uses its metric objects instead. Both give the middleware the same
`series(method, route)` with `start()` and `finish(status, seconds, trace_id, ended)`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from time import perf_counter, time
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.http import semconv
from exporter.http.families import Row, Snapshot, families
from exporter.http.semconv import SemconvSeries
from exporter.http.series import Series
from exporter.registry_parts import parts_on

# The metric names the middleware publishes (EXPORTER_HTTP_METRICS): the kit's own, or the
# OpenTelemetry HTTP semantic conventions'.
Naming = Literal["default", "semconv"]
REQUESTS_HELP = "HTTP requests answered, by method, route template and status code."
DURATION_HELP = "Time from the request's arrival to its last response byte, by route template."
IN_PROGRESS_HELP = "HTTP requests being handled now, by method and route template."
_HELPS = {
    "http_requests": REQUESTS_HELP,
    "http_request_duration_seconds": DURATION_HELP,
    "http_requests_in_progress": IN_PROGRESS_HELP,
}


class RouteSeries(Protocol):
    """The numbers of one (method, route) pair."""

    method: str
    route: str

    def start(self) -> None:
        """A request of this route has arrived."""

    def finish(
        self, status: int, seconds: float, trace_id: str, ended: float | None = None
    ) -> None:
        """That request's response is complete (at `perf_counter()` `ended`, default now)."""

    def failed(self, trace_id: str, error: BaseException) -> None:
        """An exception escaped the app during that request (after `finish`)."""


class HttpMetrics(Protocol):
    """What the middleware needs: one series per (method, route)."""

    buckets: tuple[float, ...]
    naming: Naming

    def series(self, method: str, route: str) -> RouteSeries:
        """The series of this method and route, created on first use."""


class HttpCollector(Collector):
    """`http_requests_total`, `http_request_duration_seconds`, `http_requests_in_progress`; or,
    under the `semconv` naming, the two OpenTelemetry families (`exporter.http.semconv`)."""

    def __init__(
        self, buckets: Sequence[float], registry: CollectorRegistry | None = None,
        naming: Naming = "default",
    ):
        self.buckets = tuple(buckets)
        self.naming = naming
        self._bounds = (*self.buckets, float("inf"))
        self._le = [floatToGoString(b) for b in self._bounds]  # type: ignore[no-untyped-call]
        self._kind = Series if naming == "default" else SemconvSeries
        self._series: dict[tuple[str, str], Series] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def series(self, method: str, route: str) -> Series:
        """The series of this method and route, created on first use."""
        series = self._series.get((method, route))
        if series is None:
            with self._lock:
                series = self._series.setdefault(
                    (method, route), self._kind(self._bounds, method, route)
                )
        return series

    def describe(self) -> Iterable[Metric]:
        if self.naming == "semconv":
            return [
                HistogramMetricFamily(semconv.DURATION, semconv.DURATION_HELP,
                                      labels=list(semconv.LABELS)),
                GaugeMetricFamily(semconv.ACTIVE, semconv.ACTIVE_HELP,
                                  labels=list(semconv.ACTIVE_LABELS)),
            ]
        return [
            CounterMetricFamily(
                "http_requests", REQUESTS_HELP, labels=["method", "route", "status"]
            ),
            HistogramMetricFamily(
                "http_request_duration_seconds", DURATION_HELP, labels=["method", "route"]
            ),
            GaugeMetricFamily(
                "http_requests_in_progress", IN_PROGRESS_HELP, labels=["method", "route"]
            ),
        ]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            series = list(self._series.values())
        # Exemplars keep perf_counter() times: one offset turns them into wall-clock times.
        to_wall = time() - perf_counter()
        if self.naming == "semconv":
            return semconv.semconv_families(series, self._le, to_wall)
        return families(Snapshot([Row(one, to_wall) for one in series], self._le, _HELPS))


class _ClientSeries:
    __slots__ = ("_duration", "_in_progress", "_metrics", "_statuses", "method", "route")

    def __init__(self, metrics: MultiprocessHttpMetrics, method: str, route: str) -> None:
        self._metrics, self.method, self.route = metrics, method, route
        self._in_progress = metrics.in_progress.labels(method, route)
        self._duration = metrics.duration.labels(method, route)
        self._statuses: dict[int, Any] = {}

    def start(self) -> None:
        self._in_progress.inc()

    def finish(
        self, status: int, seconds: float, trace_id: str, ended: float | None = None
    ) -> None:
        # Exemplars are not kept in multiprocess files, so none is passed.
        self._duration.observe(seconds)
        child = self._statuses.get(status)
        if child is None:
            child = self._metrics.requests.labels(self.method, self.route, str(status))
            self._statuses[status] = child
        child.inc()
        self._in_progress.dec()

    def failed(self, trace_id: str, error: BaseException) -> None:
        """Not recorded under the default names."""


class _SemconvClientSeries(_ClientSeries):
    """The semconv names in multiprocess files. A response already complete when its exception
    escaped keeps its status code as `error_type` (the observation is in the file already)."""

    def __init__(self, metrics: MultiprocessHttpMetrics, method: str, route: str) -> None:
        self._metrics, self.method, self.route = metrics, method, route
        self._in_progress = metrics.in_progress.labels(method, route)
        self._statuses = {}

    def finish(
        self, status: int, seconds: float, trace_id: str, ended: float | None = None
    ) -> None:
        child = self._statuses.get(status)
        if child is None:
            error = str(status) if status >= 500 else ""
            child = self._metrics.duration.labels(self.method, self.route, str(status), error)
            self._statuses[status] = child
        child.observe(seconds)
        self._in_progress.dec()


class MultiprocessHttpMetrics:
    """The same metrics on prometheus-client objects, which write the shared files."""

    def __init__(
        self, buckets: Sequence[float], registry: CollectorRegistry, naming: Naming = "default"
    ) -> None:
        self.buckets = tuple(buckets)
        self.naming = naming
        self._kind = _ClientSeries if naming == "default" else _SemconvClientSeries
        if naming == "semconv":
            self.duration = Histogram(semconv.DURATION, semconv.DURATION_HELP, semconv.LABELS,
                                      buckets=self.buckets, registry=registry)
            self.in_progress = Gauge(semconv.ACTIVE, semconv.ACTIVE_HELP, semconv.ACTIVE_LABELS,
                                     multiprocess_mode="livesum", registry=registry)
        else:
            self.requests = Counter("http_requests_total", REQUESTS_HELP,
                                    ("method", "route", "status"), registry=registry)
            self.duration = Histogram("http_request_duration_seconds", DURATION_HELP,
                                      ("method", "route"), buckets=self.buckets,
                                      registry=registry)
            # livesum: a scrape adds up the live workers' in-flight requests.
            self.in_progress = Gauge("http_requests_in_progress", IN_PROGRESS_HELP,
                                     ("method", "route"), multiprocess_mode="livesum",
                                     registry=registry)
        self._series: dict[tuple[str, str], _ClientSeries] = {}
        self._lock = threading.Lock()

    def series(self, method: str, route: str) -> _ClientSeries:
        """The series of this method and route, created on first use."""
        series = self._series.get((method, route))
        if series is None:
            with self._lock:
                series = self._series.setdefault(
                    (method, route), self._kind(self, method, route)
                )
        return series


def http_metrics_for(
    registry: CollectorRegistry, buckets: Sequence[float], multiprocess: bool = False,
    naming: Naming = "default",
) -> HttpMetrics:
    """The registry's HTTP metrics, created on first use; a second app shares them."""

    def create() -> HttpMetrics:
        if multiprocess:
            return MultiprocessHttpMetrics(buckets, registry, naming)
        return HttpCollector(buckets, registry, naming)

    metrics = parts_on(registry).get_or_create("http metrics", create)
    if metrics.naming != naming:
        raise ValueError(
            "HTTP metric names differ from those already registered on this registry: "
            f"{metrics.naming} vs {naming}"
        )
    if metrics.buckets != tuple(buckets):
        raise ValueError(
            "histogram buckets differ from those already registered on this registry: "
            f"{list(metrics.buckets)} vs {list(buckets)}"
        )
    return metrics
