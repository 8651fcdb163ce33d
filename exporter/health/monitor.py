"""The sidecar's health machinery for one registry: prober, history, alerts; started by lifespan."""

from __future__ import annotations

import threading
import weakref

from prometheus_client import CollectorRegistry

from exporter.config import Settings
from exporter.config.dependencies import parse_dependency, parse_queues
from exporter.health.alerts import AlertEvaluator
from exporter.health.dependency_collector import DependencyCollector, ProbeDurations
from exporter.health.history import History
from exporter.health.probes.runner import ProbeRunner
from exporter.health.queue_collector import QueueCollector
from exporter.health.sampler import HistorySampler
from exporter.thresholds import Thresholds, ThresholdsError, load_thresholds, parse_duration

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, HealthMonitor] = (
    weakref.WeakKeyDictionary()
)


class HealthMonitor:
    """Probes, queue readings, the history ring and in-process alerts, wired to one registry.

    Construction validates the thresholds file (raising `ThresholdsError`) and registers the
    collectors; `start()` / `stop()` run and end the background threads.
    """

    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry,
        thresholds: Thresholds | None = None,
        history_source: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.thresholds = thresholds or load_thresholds(settings.thresholds_file)
        dependencies = [parse_dependency(n, u) for n, u in settings.dependencies.items()]
        queues = parse_queues(settings.queues)
        with _lock:
            previous = _by_registry.get(registry)
            if previous is not None:  # a second app on the same registry replaces the first
                previous.stop()
                previous.unregister()
            self._durations = ProbeDurations(registry)
            self.runner = ProbeRunner(
                dependencies, queues,
                interval=settings.probe_interval_seconds,
                timeout=settings.probe_timeout_seconds,
                on_probe=self._durations.observe,
            )
            self._collectors = [
                DependencyCollector(self.runner, registry),
                QueueCollector(self.runner, registry),
            ]
            _by_registry[registry] = self
        # Rates and percentiles over the rules' window, so the verdicts here are Prometheus'.
        self.signal_window = self.thresholds.render.rate_window
        seconds = parse_duration(self.signal_window)
        if seconds < 2 * settings.history_interval_seconds:
            raise ThresholdsError(
                f"render.rate_window {self.signal_window} of the thresholds file must hold at "
                "least two history samples: make EXPORTER_HISTORY_INTERVAL_SECONDS at most "
                f"{seconds / 2:g} (it is {settings.history_interval_seconds:g})")
        # With several workers, what `/metrics` serves (every worker's files added up), so the
        # history, the alerts and the status page see the whole service, not one worker.
        self.history = History(
            registry if history_source is None else history_source,
            signal_window=seconds,
            interval=settings.history_interval_seconds,
            window=settings.history_window_seconds,
        )
        self.alerts = AlertEvaluator(self.thresholds)
        self.sampler = HistorySampler(self.history, [self.alerts.evaluate])

    def start(self) -> None:
        """Start probing and sampling in the background."""
        self.runner.start()
        self.sampler.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both background threads; idempotent."""
        self.runner.stop(timeout)
        self.sampler.stop(timeout)

    def unregister(self) -> None:
        """Remove this monitor's metrics from the registry."""
        for collector in (*self._collectors, self._durations.histogram):
            try:
                self.registry.unregister(collector)
            except KeyError:
                pass
