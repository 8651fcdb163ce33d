"""The health machinery of what the sidecar watches: prober, history, alerts; one runtime part.

What is watched: the app's own registry (the sidecar itself, or an app instrumented with the
observability API), or the apps listed in EXPORTER_TARGETS / EXPORTER_TARGETS_FILE, scraped
each history interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from exporter.config import Settings
from exporter.config.dependencies import parse_dependency, parse_queues
from exporter.config.targets import parse_targets
from exporter.health.alerts import AlertEvaluator
from exporter.health.dependency_collector import DependencyCollector, ProbeDurations
from exporter.health.engine_alerts import EngineAlerts
from exporter.health.engines import EngineClient, PrometheusQueries
from exporter.health.history import History, Source, both, registry_source
from exporter.health.probes.runner import ProbeRunner
from exporter.health.prometheus_source import PrometheusPoints
from exporter.health.queue_collector import QueueCollector
from exporter.health.sampler import HistorySampler
from exporter.health.targets import TargetsSource
from exporter.registry_parts import parts_on
from exporter.thresholds import Thresholds, ThresholdsError, load_thresholds, parse_duration


@dataclass
class _Current:
    """The monitor that owns a registry's probe metrics now (one per registry)."""

    monitor: HealthMonitor | None = field(default=None)


class HealthMonitor:
    """Probes, queue readings, the history ring and in-process alerts.

    Construction validates the thresholds file (raising `ThresholdsError`) and registers the
    probe collectors on `registry`; `start()` / `stop()` run and end the background threads.
    A second monitor on the same registry replaces the first (its collectors are unregistered).
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
        current = parts_on(registry).get_or_create("health monitor", _Current)
        if current.monitor is not None:
            current.monitor.stop()
            current.monitor.unregister()
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
        current.monitor = self
        # Called before the API, the page or a scrape reads the state: a worker that does not
        # run this monitor itself reads the one that does (health/shared.py).
        self.before_read: Callable[[], None] = lambda: None
        self.runner.before_read = lambda: self.before_read()
        # Rates and percentiles over the rules' window, so the verdicts here are Prometheus'.
        self.signal_window = self.thresholds.render.rate_window
        seconds = parse_duration(self.signal_window)
        if seconds < 2 * settings.history_interval_seconds:
            raise ThresholdsError(
                f"render.rate_window {self.signal_window} of the thresholds file must hold at "
                "least two history samples: make EXPORTER_HISTORY_INTERVAL_SECONDS at most "
                f"{seconds / 2:g} (it is {settings.history_interval_seconds:g})")
        self.targets: TargetsSource | None = None
        self.engines: list[EngineClient] = []  # Prometheus, Alertmanager: over-Prometheus mode
        self._prometheus: PrometheusPoints | None = None
        source: Source | CollectorRegistry | None
        if settings.prometheus_url:
            self._over_prometheus(settings)
            return
        if settings.targets or settings.targets_file is not None:
            self.targets = TargetsSource(
                parse_targets(settings.targets),
                Path(settings.targets_file) if settings.targets_file is not None else None,
                timeout=settings.scrape_timeout_seconds)
            # The apps' series, and this sidecar's own probes of their dependencies and queues.
            source = both(self.targets, registry_source(registry, ("dependency_", "queue_")))
        else:
            # With several workers, what `/metrics` serves (every worker's files added up), so
            # the history, the alerts and the status page see the whole service.
            source = registry if history_source is None else history_source
        self.history = History(
            source, signal_window=seconds, interval=settings.history_interval_seconds,
            window=settings.history_window_seconds, per_instance=self.targets is not None,
        )
        self.alerts: AlertEvaluator | EngineAlerts = AlertEvaluator(self.thresholds)
        self.sampler = HistorySampler(self.history, [self.alerts.evaluate])

    def _over_prometheus(self, settings: Settings) -> None:
        """History from the catalogue's PromQL, alerts from Alertmanager (or Prometheus)."""
        def secret(value: SecretStr | None) -> str:
            return value.get_secret_value() if value is not None else ""

        prometheus = EngineClient(
            "prometheus", settings.prometheus_url, timeout=settings.engine_timeout_seconds,
            username=settings.prometheus_username, password=secret(settings.prometheus_password),
            bearer=secret(settings.prometheus_bearer_token), tenant=settings.prometheus_tenant)
        alertmanager = EngineClient(
            "alertmanager", settings.alertmanager_url, timeout=settings.engine_timeout_seconds,
        ) if settings.alertmanager_url else None
        self.engines = [prometheus, *([alertmanager] if alertmanager else [])]
        self._prometheus = PrometheusPoints(
            PrometheusQueries(prometheus), settings.service_selector, self.signal_window)
        self.history = History(
            None, points_from=self._prometheus,
            signal_window=parse_duration(self.signal_window),
            interval=settings.history_interval_seconds, window=settings.history_window_seconds)
        alerts = EngineAlerts(prometheus, alertmanager, self.thresholds, settings.service_selector)
        self.alerts = alerts
        backfilled = False

        def backfill_once() -> None:
            nonlocal backfilled
            if not backfilled and self._prometheus is not None:
                backfilled = True  # once, even if it fails: the ring fills as it goes
                self.history.extend(self._prometheus.backfill(
                    min(self.history.window, 3600.0), self.history.interval))

        self.sampler = HistorySampler(self.history, before=[backfill_once, alerts.refresh])

    def start(self) -> None:
        """Start probing and sampling in the background."""
        self.runner.start()
        self.sampler.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop both background threads; idempotent. False when one did not end in time."""
        probes = self.runner.stop(timeout)
        history = self.sampler.stop(timeout)
        if self.targets is not None:
            self.targets.close()
        if self._prometheus is not None:
            self._prometheus.close()
        for engine in self.engines:
            engine.close()
        return bool(probes) and bool(history)

    def unregister(self) -> None:
        """Remove this monitor's metrics from the registry."""
        for collector in (*self._collectors, self._durations.histogram):
            try:
                self.registry.unregister(collector)
            except KeyError:
                pass
