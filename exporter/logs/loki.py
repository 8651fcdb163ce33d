"""`LokiShipper`: a logging handler whose caller only enqueues; one worker batches and pushes."""

from __future__ import annotations

import atexit
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.logs.push import LokiClient, PushResult, encode_push
from exporter.logs.shipper_metrics import ShipperMetrics, shipper_metrics_for
from exporter.logs.spool import Spool, Spools
from exporter.logs.streams import Entry, Streams

_log = logging.getLogger("exporter.logs.loki")
# Our own diagnostics are not shipped: a failing push must not feed the queue it cannot drain.
_IGNORED_LOGGERS = ("exporter.logs.loki",)
_STOP = object()
_SPOOL_GRACE = 10.0  # seconds close() waits past its deadline for the worker to spool the rest
_ENTRY_OVERHEAD = 32  # bytes a line costs in the push body beyond its text (timestamp, quotes)


@dataclass
class LokiConfig:
    """Where and how the shipper pushes; defaults follow docs/logs.md."""

    url: str
    spool_dir: Path
    service: str = "app"
    env: str = "development"
    static_labels: dict[str, str] = field(default_factory=dict)
    tenant: str = ""
    username: str = ""
    password: str = ""
    bearer_token: str = ""
    batch_lines: int = 1000
    batch_bytes: int = 1 << 20
    batch_wait: float = 1.0
    queue_lines: int = 100_000
    spool_max_bytes: int = 512 << 20
    close_timeout: float = 5.0
    push_timeout: float = 5.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0


class LokiShipper(logging.Handler):
    """Ships formatted records to Loki without ever blocking the caller or losing a line silently.

    `emit` formats the record in the caller's thread and puts it on a bounded queue (a full queue
    counts a `queue_full` drop). One daemon worker batches lines (by count, bytes or age), groups
    them into streams by low-cardinality labels (service, env, level and static labels), gzips
    and POSTs them. 429, 5xx and network errors put the batch in the disk spool and retry with
    exponential backoff and full jitter (or `Retry-After`); while the spool holds anything, new
    batches queue behind it so each stream stays in order. Other 4xx drop the batch (`rejected`).
    `close()` pushes what it can within the deadline and spools the rest for the next start.
    """

    def __init__(
        self,
        config: LokiConfig,
        registry: CollectorRegistry | None = None,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.config = config
        self._client = LokiClient(
            config.url, config.tenant, config.username, config.password, config.bearer_token
        )
        self.metrics: ShipperMetrics = shipper_metrics_for(registry)
        self.metrics.watch(self)
        # SimpleQueue (C, lock-free for the caller) costs a tenth of queue.Queue per line; the
        # bound is checked before each put, so concurrent callers may overshoot it by a few.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._capacity = config.queue_lines
        # The own slot, and slots other processes left (fewer workers after a restart).
        self._spool = Spools(config.spool_dir, config.spool_max_bytes, self._drop_spooled)
        self._streams = Streams(config)
        self._next_attempt = 0.0
        self._failures = 0
        # The batch being built lives on the shipper, so a failed turn can count what it lost.
        self._batch: list[Entry] = []
        self._batch_size = 0
        self._started = 0.0
        self._failure_logged = -60.0
        self.worker_errors = 0
        self.last_worker_error: str | None = None
        self.last_worker_error_at: float | None = None
        self._deadline: float | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self.last_result: PushResult | None = None
        self.last_success: float | None = None
        self._worker = threading.Thread(target=self._run, name="exporter-loki", daemon=True)
        self._worker.start()
        # A process that exits without close() still flushes: atexit runs before daemon
        # threads are stopped.
        atexit.register(self.close)

    # ---- caller side -------------------------------------------------------------------
    def takes(self, logger: str) -> bool:
        """False for the shipper's own loggers: shipping what it says about shipping could
        feed on itself."""
        return not logger.startswith(_IGNORED_LOGGERS)

    def ship(
        self, created: float, levelname: str, logger: str, line: str, service: object = None
    ) -> None:
        """Queue a record's formatted line, unless `logger` is one of the shipper's own."""
        if self.takes(logger):
            self.enqueue_line(created, levelname.lower(), line, service)

    def emit(self, record: logging.LogRecord) -> None:
        if not self.takes(record.name):  # before formatting: a line not shipped is not made
            return
        try:
            self.ship(record.created, record.levelname, record.name, self.format(record),
                      record.__dict__.get("service"))
        except Exception:
            self.handleError(record)

    def enqueue_line(
        self, created: float, level: str, line: str, service: object = None
    ) -> bool:
        """Queue one formatted line; False (and a counted drop) when it cannot be taken.

        `service` (default: the configured one) becomes the `service` label; any value is taken
        as text, and past `streams.MAX_SERVICES` distinct names the configured service is used
        instead (the line keeps the caller's name).
        """
        labels = self._streams.labels(service, level)
        if self._closed:
            self.metrics.dropped("closed", 1)
            return False
        if self._queue.qsize() >= self._capacity:
            self.metrics.dropped("queue_full", 1)
            return False
        self._queue.put_nowait((labels, int(created * 1e9), line))
        return True

    @property
    def worker_alive(self) -> bool:
        """True while the worker thread runs (it ends only after `close()`)."""
        return self._worker.is_alive()

    @property
    def worker_failing(self) -> bool:
        """True when the worker's last failure came after its last successful push."""
        failed = self.last_worker_error_at
        return failed is not None and (self.last_success is None or failed >= self.last_success)

    @property
    def queue_lines(self) -> int:
        """Lines waiting in memory."""
        return self._queue.qsize()

    @property
    def queue_capacity(self) -> int:
        """Lines the queue takes before a new one is dropped (`queue_full`)."""
        return self._capacity

    @property
    def spool_bytes(self) -> int:
        """Bytes waiting in the slots this shipper holds (its own, and one it adopted)."""
        return self._spool.held_bytes

    @property
    def spool_batches(self) -> int:
        """Batches waiting in the slots this shipper holds."""
        return self._spool.held_batches

    def spool_usage(self) -> tuple[int, int]:
        """(bytes, batches) waiting in every slot of the spool directory, held by any process
        or by none."""
        return Spool.usage(self.config.spool_dir)

    def close(self, timeout: float | None = None) -> None:
        """Push what is queued within `timeout` (default: the configured close deadline); spool
        what could not be sent. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        wait = self.config.close_timeout if timeout is None else timeout
        self._deadline = time.monotonic() + wait
        self._queue.put_nowait(_STOP)  # behind every line queued before close()
        self._worker.join(wait)
        if self._worker.is_alive():
            # A push that began before close() still has its own, longer timeout: cut it short.
            # The worker then spools that batch and what is queued, which takes a little longer.
            self._client.abort()
            self._worker.join(_SPOOL_GRACE)
        self._count_left_behind()
        self._client.close()
        self._spool.release()
        self.metrics.unwatch(self)
        atexit.unregister(self.close)
        super().close()

    def _count_left_behind(self) -> None:
        # Lines the worker could not take (it died, or a caller raced close()): counted, never
        # lost silently.
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                left += 1
        if left:
            self.metrics.dropped("closed", left)

    # ---- worker side -------------------------------------------------------------------
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
            if item is _STOP:
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
            _log.error("Loki shipper worker failed (%d so far), dropped %d lines: %s",
                       self.worker_errors, lost, self.last_worker_error, exc_info=exc)
        time.sleep(0.05)  # never a hot loop

    def _ship(self, batch: list[Entry]) -> None:
        body = encode_push(self._streams.in_order(batch))
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
            _log.error(
                "Loki rejected a batch of %d lines with HTTP %s; dropped it: %s",
                lines, result.status, result.detail[:200],
            )
        return result

    def _drop_spooled(self, lines: int) -> None:
        self.metrics.dropped("spool_full", lines)
