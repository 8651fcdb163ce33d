"""`BackgroundWorker`: hands captured errors to slow consumers on a background thread.

A SQLite write takes a lock and may wait for another process, and a Sentry event takes about
a millisecond to prepare: neither runs in the request's thread (or the event loop). `submit()`
only appends to a bounded queue.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from exporter.worker import Worker

_log = logging.getLogger("exporter.errors")
_BATCH = 1000


class _Flush:
    """A marker in the queue: set once everything queued before it is written."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class BackgroundWorker(Worker):
    """Bounded queue + one `Worker` thread (`exporter-<name>`) calling `handle(batch)`; counted
    drops (`on_drop` when the queue is full, `on_failure(n)` when `handle` raised on a batch of
    n); `stop()` drains within a deadline; `periodic` runs on the same thread every `period`
    seconds, idle or not (the thread then starts at once; otherwise at the first `submit`)."""

    def __init__(
        self,
        handle: Callable[[list[Any]], None],
        *,
        name: str,
        max_queued: int = 10_000,
        on_drop: Callable[[], None] | None = None,
        on_failure: Callable[[int], None] | None = None,
        periodic: Callable[[], object] | None = None,
        period: float = 600.0,
        linger: float = 0.0,
    ) -> None:
        super().__init__(name)
        self._handle = handle
        self._periodic = periodic
        self._period = period
        # Waiting a little after the first item gathers a burst into one batch: one SQLite
        # transaction for a hundred errors instead of a hundred transactions.
        self._linger = linger
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[object] = queue.Queue(max_queued)
        self._on_drop = on_drop
        self._on_failure = on_failure
        if periodic is not None:
            self.start()  # the periodic task runs from the start, errors or not

    def submit(self, item: object) -> bool:
        """Queue `item`; False (and counted as dropped) when the queue is full or stopped."""
        if self.stopped:
            self._drop()
            return False
        self.start()  # on first use, and again in a forked child (its own thread)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far is written; False on timeout."""
        if self.stopped or not self.alive:
            return True
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def _finish(self, timeout: float) -> None:
        # The thread writes what is queued before the marker, then ends.
        if self.alive:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                pass

    def _run(self) -> None:
        last_periodic = time.monotonic()
        while True:
            batch: list[Any] = []
            markers: list[_Flush] = []
            if self._periodic is not None and time.monotonic() - last_periodic >= self._period:
                last_periodic = time.monotonic()
                self._guarded(self._periodic)
            try:
                # With a periodic task the wait ends when it is due, so it runs while idle too.
                item = self._queue.get(timeout=None if self._periodic is None else max(
                    0.0, last_periodic + self._period - time.monotonic()))
            except queue.Empty:
                continue
            if self._linger > 0 and not isinstance(item, _Flush) and item is not _STOP:
                time.sleep(self._linger)
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(batch)
            for marker in markers:
                marker.done.set()
            if stop:
                return

    def _write(self, batch: list[Any]) -> None:
        if batch and not self._guarded(lambda: self._handle(batch)):
            self.failed += len(batch)
            if self._on_failure is not None:
                self._on_failure(len(batch))

    def _guarded(self, action: Callable[[], object]) -> bool:
        # The thread must outlive a locked database or a broken consumer; each failure is logged.
        try:
            action()
        except Exception as exc:
            _log.warning("%s failed: %s", self.thread_name, exc)
            return False
        return True
