"""The in-memory Loki shipper's worker thread: it takes the queued lines, batches them by count,
bytes and age, pushes each batch or spools it, retries (see `PushingWorker`), and replays the
spool. `LokiShipper` (loki.py) is the side callers see; it sets up the state read here."""

from __future__ import annotations

import queue
import time
from typing import Any

from exporter.logs.line_fields import metadata_of
from exporter.logs.push import encode_push
from exporter.logs.pushing import PushingWorker
from exporter.logs.spool import Spools
from exporter.logs.streams import Entry

STOP = object()  # put on the queue by close(), behind every line queued before it
_ENTRY_OVERHEAD = 32  # bytes a line costs in the push body beyond its text (timestamp, quotes)


class ShipperWorker(PushingWorker):
    """The worker side of `LokiShipper`: its methods run on the shipper's one `Worker` thread
    (`exporter-loki`)."""

    _queue: queue.SimpleQueue[Any]
    _spool: Spools
    _batch: list[Entry]
    _batch_size: int
    _started: float

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                stopping = self._turn()
            except Exception as exc:  # nothing may end the worker: count, log, go on
                self._failed(exc)
        try:
            self._replay(time_slice=None)  # close(): use what is left of the deadline
        except Exception as exc:
            self._failed(exc)

    def _turn(self) -> bool:
        """One turn of the worker: take queued lines, ship full or old batches, replay the
        spool. True once the stop marker was seen."""
        cfg = self.config
        now = time.monotonic()
        wait = cfg.batch_wait if not self._batch else max(0.0, self._started + cfg.batch_wait - now)
        if len(self._spool) and self._deadline is None:
            wait = min(wait, max(0.0, self._next_attempt - now))
        try:
            item = self._queue.get(timeout=max(wait, 0.001))
        except queue.Empty:
            item = None
        stopping = False
        while item is not None:
            if item is STOP:
                # Lines a caller put just after the marker (racing close()) are still taken.
                stopping = True
            else:
                if not self._batch:
                    self._started = time.monotonic()
                labels, ts_ns, line = item
                self._batch.append((labels, ts_ns, line, metadata_of(line)))
                self._batch_size += len(item[2]) + _ENTRY_OVERHEAD
                if len(self._batch) >= cfg.batch_lines or self._batch_size >= cfg.batch_bytes:
                    self._ship_batch()
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                item = None
        if self._batch and (stopping or time.monotonic() - self._started >= cfg.batch_wait):
            self._ship_batch()
        if not stopping:
            self._replay(time_slice=0.5)
        return stopping

    def _ship_batch(self) -> None:
        self._ship(self._batch)
        self._batch, self._batch_size = [], 0  # only once shipped: a failure counts them

    def _failed(self, exc: Exception) -> None:
        lost, self._batch, self._batch_size = len(self._batch), [], 0
        self._note_failure(exc, lost)

    def _ship(self, batch: list[Entry]) -> None:
        body = encode_push(batch)
        if len(self._spool) or not self._may_push():
            self._spool.add(body, len(batch))
            return
        result = self._push(body, len(batch))
        if result.outcome == "retry":
            self._spool.add(body, len(batch))

    def _replay(self, time_slice: float | None) -> None:
        """Send spooled batches oldest first until one fails or the time slice is used; with
        nothing of its own left, an idle shipper replays the slots other processes left."""
        end = time.monotonic() + time_slice if time_slice is not None else None
        self._spool.replay(self._resend, self._may_push, end, own_only=self._deadline is not None)

    def _resend(self, body: bytes, lines: int) -> bool:
        return self._push(body, lines).outcome != "retry"

    def _drop_spooled(self, lines: int) -> None:
        self.metrics.dropped("spool_full", lines)
