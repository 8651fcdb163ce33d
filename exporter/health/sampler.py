"""`HistorySampler`: records a history sample every interval in a background thread."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from exporter.health.history import History, Point
from exporter.worker import PeriodicWorker

log = logging.getLogger("exporter.history")


class HistorySampler(PeriodicWorker):
    """Calls `history.record()` every `history.interval` seconds in a `PeriodicWorker` thread
    (`exporter-history`), the first sample at once.

    Each interval the `before` callables run first, whatever becomes of the sample (reading
    Alertmanager while Prometheus is down); after each sample the `on_sample` callbacks run
    (in-process alert evaluation). A callable that raises is logged and the sampler carries on.
    """

    def __init__(
        self, history: History, on_sample: Iterable[Callable[[Point], object]] = (),
        before: Iterable[Callable[[], object]] = (),
    ) -> None:
        # A broken collector must not end the history: the worker logs the failure, goes on.
        super().__init__("history", history.interval, log=log, failure="history sample failed",
                         quiet=60.0)
        self.history = history
        self.on_sample = list(on_sample)
        self.before = list(before)

    def sample_once(self) -> Point:
        """Record one sample and run the callbacks (also used by tests and start-up)."""
        for call in self.before:
            try:
                call()
            except Exception:
                log.exception("history callback failed")
        sample = self.history.record()
        for callback in self.on_sample:
            try:
                callback(sample)
            except Exception:
                log.exception("history callback failed")
        return sample

    def run_once(self) -> None:
        self.sample_once()
