"""`HistorySampler`: records a history sample every interval in a background thread."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Iterable

from exporter.health.history import History, Point

log = logging.getLogger("exporter.history")


class HistorySampler:
    """Calls `history.record()` every `history.interval` seconds in a daemon thread.

    After each sample the `on_sample` callbacks run (in-process alert evaluation); a callback
    that raises is logged and the sampler carries on.
    """

    def __init__(
        self, history: History, on_sample: Iterable[Callable[[Point], object]] = ()
    ) -> None:
        self.history = history
        self.on_sample = list(on_sample)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_once(self) -> Point:
        """Record one sample and run the callbacks (also used by tests and start-up)."""
        sample = self.history.record()
        for callback in self.on_sample:
            try:
                callback(sample)
            except Exception:
                log.exception("history callback failed")
        return sample

    def start(self) -> None:
        """Start sampling (idempotent); the first sample is taken at once."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="exporter-history", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sampling; idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:  # a broken collector must not end the history
                log.exception("history sample failed")
            self._stop.wait(self.history.interval)
