"""`dependency_*` metrics from the background prober's last results (no I/O at scrape time)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.config.dependencies import Dependency
from exporter.health.probes.runner import ProbeRunner

# Probe latencies sit between a LAN round trip and the 2 s default timeout; the last buckets
# reach the longest timeout allowed (EXPORTER_PROBE_TIMEOUT_SECONDS <= 60).
PROBE_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
    60.0,
)


class DependencyCollector(Collector):
    """`dependency_up`, `dependency_latency_seconds` (last probe) and Redis server gauges."""

    def __init__(self, runner: ProbeRunner, registry: CollectorRegistry | None = None) -> None:
        self._runner = runner
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Declared so that registering does not run a collection.
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        labels = ["name", "kind"]
        return (
            GaugeMetricFamily(
                "dependency_up", "1 when the last probe of the dependency succeeded.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "dependency_latency_seconds",
                "Round trip of the last probe (PING or SELECT 1); absent while it is down.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "dependency_last_probe_timestamp_seconds",
                "When the dependency was last probed (Unix time).", labels=labels,
            ),
            GaugeMetricFamily(
                "dependency_redis_used_memory_bytes", "Redis INFO used_memory.", labels=["name"]
            ),
            GaugeMetricFamily(
                "dependency_redis_connected_clients", "Redis INFO connected_clients.",
                labels=["name"],
            ),
        )

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up, latency, checked, memory, clients = self._families()
        results = self._runner.dependency_results()
        for dep in self._runner.dependencies:
            result = results.get(dep.name)
            if result is None:  # not probed yet: no sample rather than a made-up one
                continue
            labels = [dep.name, dep.kind]
            up.add_metric(labels, 1.0 if result.up else 0.0)
            checked.add_metric(labels, result.checked_at)
            if result.latency is not None:
                latency.add_metric(labels, result.latency)
            if "used_memory_bytes" in result.details:
                memory.add_metric([dep.name], result.details["used_memory_bytes"])
            if "connected_clients" in result.details:
                clients.add_metric([dep.name], result.details["connected_clients"])
        return (up, latency, checked, memory, clients)


class ProbeDurations:
    """`dependency_probe_duration_seconds`: every probe's duration, timeouts included."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram(
            "dependency_probe_duration_seconds",
            "Duration of each dependency probe, including connection set-up and timeouts.",
            ("name", "kind"),
            buckets=PROBE_BUCKETS,
            registry=registry,
        )

    def observe(self, dep: Dependency, seconds: float) -> None:
        """Record one probe; the runner calls this after each probe."""
        self.histogram.labels(dep.name, dep.kind).observe(seconds)
