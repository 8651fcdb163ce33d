"""`StoreWriter`: moves captured events to the `ErrorStore` in a background thread.

A SQLite write takes a lock and may wait for another process, so it never runs in the
request's thread (or the event loop): `submit()` only appends to a bounded queue.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from exporter.errors.event import ErrorEvent
from exporter.errors.store import ErrorStore

_log = logging.getLogger("exporter.errors")
_BATCH = 200
_PRUNE_EVERY = 600.0


class _Flush:
    """A marker in the queue: set once everything queued before it is written."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class StoreWriter:
    """Bounded queue + one writer thread; counted drops; `stop()` drains within a deadline."""

    def __init__(
        self,
        store: ErrorStore,
        *,
        max_queued: int = 10_000,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[object] = queue.Queue(max_queued)
        self._on_drop = on_drop
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._start_lock = threading.Lock()
        self._stopped = False

    def _ensure_thread(self) -> None:
        # Started on first use, and again in a forked child (threads do not survive fork).
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._start_lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="exporter-error-store", daemon=True
                )
                self._thread.start()
                atexit.register(self.stop)

    def submit(self, event: ErrorEvent) -> bool:
        """Queue `event` for the store; False (and counted as dropped) when full or stopped."""
        if self._stopped:
            self._drop()
            return False
        self._ensure_thread()
        try:
            self._queue.put_nowait(event)
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
        if self._thread is None or self._stopped:
            return True
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (within `timeout`), then end the thread. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            deadline = time.monotonic() + timeout
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                pass
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        last_prune = time.monotonic()
        while True:
            batch: list[ErrorEvent] = []
            markers: list[_Flush] = []
            item = self._queue.get()
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                elif isinstance(item, ErrorEvent):
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
            if time.monotonic() - last_prune > _PRUNE_EVERY:
                last_prune = time.monotonic()
                self._guarded(self.store.prune)

    def _write(self, batch: list[ErrorEvent]) -> None:
        if batch and not self._guarded(lambda: self.store.record(batch)):
            self.failed += len(batch)

    @staticmethod
    def _guarded(action: Callable[[], object]) -> bool:
        # The writer must outlive a locked or broken database; the failure is logged once each.
        try:
            action()
        except Exception as exc:
            _log.warning("error store write failed: %s", exc)
            return False
        return True
