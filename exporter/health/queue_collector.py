"""`queue_*` metrics from the background prober's last readings (no I/O at scrape time)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.health.probes.runner import ProbeRunner


class QueueCollector(Collector):
    """`queue_depth`, `queue_consumers`, `queue_pending` (streams), `queue_exists`, `queue_up`.

    RabbitMQ depth counts ready messages only (a passive declare does not report unacknowledged
    ones). A queue that does not exist reads depth 0 with `queue_exists` 0.
    """

    def __init__(self, runner: ProbeRunner, registry: CollectorRegistry | None = None) -> None:
        self._runner = runner
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        labels = ["backend", "queue"]
        return (
            GaugeMetricFamily(
                "queue_depth",
                "Messages waiting in the queue (Redis: list length summed over Celery priority "
                "sub-queues, or stream length; RabbitMQ: ready messages).", labels=labels,
            ),
            GaugeMetricFamily(
                "queue_consumers", "Consumers attached to the queue (RabbitMQ; stream groups).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "queue_pending",
                "Stream entries delivered to a consumer group but not acknowledged.",
                labels=[*labels, "group"],
            ),
            GaugeMetricFamily(
                "queue_exists", "1 when the queue (or its Redis key) exists.", labels=labels
            ),
            GaugeMetricFamily(
                "queue_up", "1 when the queue's server answered the last reading.", labels=labels
            ),
        )

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth, consumers, pending, exists, up = self._families()
        readings = self._runner.queue_results()
        for queue in self._runner.queues:
            reading = readings.get((queue.backend, queue.queue))
            if reading is None:
                continue
            labels = [queue.backend, queue.queue]
            up.add_metric(labels, 1.0 if reading.ok else 0.0)
            if not reading.ok:
                continue
            depth.add_metric(labels, reading.depth)
            exists.add_metric(labels, 1.0 if reading.exists else 0.0)
            if reading.consumers is not None:
                consumers.add_metric(labels, reading.consumers)
            for group, count in reading.pending.items():
                pending.add_metric([*labels, group], count)
        return (depth, consumers, pending, exists, up)
