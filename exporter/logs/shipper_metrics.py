"""The Loki shipper's self-metrics, created once per registry."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.registry_parts import parts_on

DROP_REASONS = ("queue_full", "spool_full", "rejected", "closed", "failed")


class _Watched(Protocol):
    @property
    def queue_lines(self) -> int: ...

    @property
    def spool_bytes(self) -> int: ...


class _LiveGauges(Collector):
    """Queue length and spool size, read from the live shippers at scrape time."""

    def __init__(self, shippers: weakref.WeakSet[Any]) -> None:
        self._shippers = shippers

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("loki_shipper_queue_lines", "Log lines waiting in memory.")
        yield GaugeMetricFamily("loki_shipper_spool_bytes", "Bytes waiting in the disk spool.")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        shippers = list(self._shippers)
        yield GaugeMetricFamily(
            "loki_shipper_queue_lines", "Log lines waiting in memory.",
            value=sum(s.queue_lines for s in shippers),
        )
        yield GaugeMetricFamily(
            "loki_shipper_spool_bytes", "Bytes waiting in the disk spool.",
            value=sum(s.spool_bytes for s in shippers),
        )


class ShipperMetrics:
    """Counters the worker updates, plus gauges read from every live shipper at scrape time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "loki_shipper_lines_sent", "Log lines Loki accepted.", registry=registry
        )
        self._dropped = Counter(
            "loki_shipper_lines_dropped",
            "Log lines given up, by reason: queue_full, spool_full, rejected (4xx), closed, "
            "failed (an unexpected error in the worker).",
            ("reason",), registry=registry,
        )
        for reason in DROP_REASONS:  # present at 0, so an alert on increase() sees the first drop
            self._dropped.labels(reason)
        self.without_metadata = Counter(
            "loki_shipper_lines_without_metadata",
            "Log lines Loki accepted without their structured metadata (trace_id, span_id) "
            "because it refuses structured metadata; the ids stay in the line.",
            registry=registry,
        )
        self.retries = Counter(
            "loki_shipper_retries", "Pushes that failed and will be retried.", registry=registry
        )
        self.push_duration = Histogram(
            "loki_shipper_push_duration_seconds", "Time of one push to Loki, failures included.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self._shippers: weakref.WeakSet[Any] = weakref.WeakSet()
        registry.register(_LiveGauges(self._shippers))

    def dropped(self, reason: str, lines: int) -> None:
        """Count `lines` dropped for `reason` (one of DROP_REASONS)."""
        self._dropped.labels(reason).inc(lines)

    def watch(self, shipper: _Watched) -> None:
        """Include `shipper` in the queue and spool gauges."""
        self._shippers.add(shipper)

    def unwatch(self, shipper: _Watched) -> None:
        """Stop including `shipper` in the gauges."""
        self._shippers.discard(shipper)


def shipper_metrics_for(registry: CollectorRegistry | None) -> ShipperMetrics:
    """The shipper metrics on `registry` (default: the global one), created on first use."""
    registry = REGISTRY if registry is None else registry
    return parts_on(registry).get_or_create(
        "loki shipper metrics", lambda: ShipperMetrics(registry))
