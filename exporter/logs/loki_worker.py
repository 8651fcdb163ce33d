"""The Loki shipper's worker thread: it takes the queued lines, batches them by count, bytes and
age, pushes each batch or spools it, retries with backoff and full jitter, and replays the
spool. `LokiShipper` (loki.py) is the side callers see; it sets up the state read here."""

from __future__ import annotations

import logging
import queue
import random
import time
from typing import Any

from exporter.logs.loki_config import LokiConfig
from exporter.logs.push import LokiClient, PushResult, encode_push
from exporter.logs.shipper_metrics import ShipperMetrics
from exporter.logs.spool import Spools
from exporter.logs.streams import Entry, Streams
from exporter.worker import Worker

log = logging.getLogger("exporter.logs.loki")
STOP = object()  # put on the queue by close(), behind every line queued before it
_ENTRY_OVERHEAD = 32  # bytes a line costs in the push body beyond its text (timestamp, quotes)


class ShipperWorker(Worker):
    """The worker side of `LokiShipper`: its methods run on the shipper's one `Worker` thread
    (`exporter-loki`)."""

    config: LokiConfig
    metrics: ShipperMetrics
    worker_errors: int
    last_worker_error: str | None
    last_worker_error_at: float | None
    last_result: PushResult | None
    last_success: float | None
    _client: LokiClient
    _queue: queue.SimpleQueue[Any]
    _spool: Spools
    _streams: Streams
    _next_attempt: float
    _failures: int
    _batch: list[Entry]
    _batch_size: int
    _started: float
    _failure_logged: float
    _deadline: float | None

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
                self._batch.append(item)
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
        if lost:
            self.metrics.dropped("failed", lost)
        self.worker_errors += 1
        self.last_worker_error = f"{type(exc).__name__}: {exc}"[:200]
        self.last_worker_error_at = time.time()
        now = time.monotonic()
        if now - self._failure_logged >= 60.0:  # a failure that repeats is logged once a minute
            self._failure_logged = now
            log.error("Loki shipper worker failed (%d so far), dropped %d lines: %s",
                       self.worker_errors, lost, self.last_worker_error, exc_info=exc)
        time.sleep(0.05)  # never a hot loop

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

    def _may_push(self) -> bool:
        now = time.monotonic()
        if self._deadline is not None:
            return now < self._deadline
        return now >= self._next_attempt

    def _push(self, body: bytes, lines: int) -> PushResult:
        timeout = self.config.push_timeout
        if self._deadline is not None:
            timeout = max(0.05, min(timeout, self._deadline - time.monotonic()))
        started = time.perf_counter()
        result = self._client.push(body, timeout)
        self.metrics.push_duration.observe(time.perf_counter() - started)
        self.last_result = result
        if result.outcome == "ok":
            self.last_success = time.time()
            self._failures = 0
            self._next_attempt = 0.0
            self.metrics.sent.inc(lines)
        elif result.outcome == "retry":
            self.metrics.retries.inc()
            self._failures += 1
            backoff = min(
                self.config.backoff_max, self.config.backoff_base * 2 ** (self._failures - 1)
            )
            delay = random.uniform(0, backoff)  # full jitter spreads the workers' retries
            if result.retry_after is not None:
                delay = min(max(delay, result.retry_after), 300.0)
            self._next_attempt = time.monotonic() + delay
        else:
            self.metrics.dropped("rejected", lines)
            log.error(
                "Loki rejected a batch of %d lines with HTTP %s; dropped it: %s",
                lines, result.status, result.detail[:200],
            )
        return result

    def _drop_spooled(self, lines: int) -> None:
        self.metrics.dropped("spool_full", lines)
