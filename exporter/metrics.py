"""The HTTP metrics, created once per registry and shared by every app instrumented on it."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, HttpMetrics] = (
    weakref.WeakKeyDictionary()
)


class HttpMetrics:
    """`http_requests_total`, `http_request_duration_seconds`, `http_requests_in_progress`."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from the request's arrival to its last response byte, by route template.",
            ("method", "route"),
            buckets=self.buckets,
            registry=registry,
        )
        # livesum: in multiprocess mode a scrape adds up the live workers' in-flight requests.
        self.in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests being handled now, by method and route template.",
            ("method", "route"),
            multiprocess_mode="livesum",
            registry=registry,
        )
        # Label children are looked up once: labels() takes a lock and validates every call.
        self._route_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._status_children: dict[tuple[str, str, int], Any] = {}

    def route_children(self, method: str, route: str) -> tuple[Any, Any]:
        """`(in_progress, duration)` children for this method and route."""
        key = (method, route)
        children = self._route_children.get(key)
        if children is None:
            children = (
                self.in_progress.labels(method, route),
                self.duration.labels(method, route),
            )
            self._route_children[key] = children
        return children

    def requests_child(self, method: str, route: str, status: int) -> Any:
        """The `http_requests_total` child for this method, route and status."""
        key = (method, route, status)
        child = self._status_children.get(key)
        if child is None:
            child = self.requests.labels(method, route, str(status))
            self._status_children[key] = child
        return child


def http_metrics_for(registry: CollectorRegistry, buckets: Sequence[float]) -> HttpMetrics:
    """The registry's HTTP metrics, created on first use; a second app shares them."""
    with _lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            metrics = HttpMetrics(registry, buckets)
            _by_registry[registry] = metrics
        elif metrics.buckets != tuple(buckets):
            raise ValueError(
                "histogram buckets differ from those already registered on this registry: "
                f"{list(metrics.buckets)} vs {list(buckets)}"
            )
        return metrics
