"""`LokiShipper`: a logging handler whose caller only enqueues; one worker batches and pushes
(its side is `ShipperWorker`, in loki_worker.py). It is for a process without the daily files:
`setup_logging` ships the files instead (`FileShipper`), whose lines outlive a `kill -9`."""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.logs.loki_config import LokiConfig
from exporter.logs.loki_worker import STOP, ShipperWorker
from exporter.logs.pushing import log
from exporter.logs.spool import Spool, Spools
from exporter.logs.streams import Entry, Streams

# Our own diagnostics are not shipped: a failing push must not feed the queue it cannot drain.
_IGNORED_LOGGERS = (log.name,)


class LokiShipper(ShipperWorker, logging.Handler):
    """Ships formatted records to Loki without ever blocking the caller or losing a line silently.

    `emit` formats the record in the caller's thread and puts it on a bounded queue (a full queue
    counts a `queue_full` drop). One daemon worker batches lines (by count, bytes or age), groups
    them into streams by low-cardinality labels (service, env, level, kind and static labels),
    with each line's trace and span ids as structured metadata, gzips
    and POSTs them, each line with its own timestamp. 429, 5xx and network errors put the batch
    in the disk spool and retry with exponential backoff and full jitter (or `Retry-After`);
    while the spool holds anything, new batches queue behind it. Other 4xx drop the batch
    (`rejected`). `close()` pushes what it can within the deadline and spools the rest for the
    next start. What waits in memory is lost to a `kill -9`.
    """

    def __init__(
        self,
        config: LokiConfig,
        registry: CollectorRegistry | None = None,
        level: int = logging.NOTSET,
    ) -> None:
        logging.Handler.__init__(self, level)
        ShipperWorker.__init__(self, "loki", config, registry)
        self.metrics.watch(self)
        # SimpleQueue (C, lock-free for the caller) costs a tenth of queue.Queue per line; the
        # bound is checked before each put, so concurrent callers may overshoot it by a few.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._capacity = config.queue_lines
        # The own slot, and slots other processes left (fewer workers after a restart).
        self._spool = Spools(config.spool_dir, config.spool_max_bytes, self._drop_spooled)
        self._streams = Streams(config)
        # The batch being built lives on the shipper, so a failed turn can count what it lost.
        self._batch: list[Entry] = []
        self._batch_size = 0
        self._started = 0.0
        self._closed = False
        # A process that exits without close() still flushes: the worker contract stops it at
        # exit, before daemon threads are killed.
        self.start()

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
        self, created: float, level: str, line: str, service: object = None, kind: str = "app"
    ) -> bool:
        """Queue one formatted line; False (and a counted drop) when it cannot be taken.

        `service` (default: the configured one) becomes the `service` label; any value is taken
        as text, and past `streams.MAX_SERVICES` distinct names the configured service is used
        instead (the line keeps the caller's name). `kind` is the `kind` label (`app` or
        `access`, as for lines read from app_*.log and access_*.log). The line's `trace_id` and
        `span_id` go with it as structured metadata (read by the worker, not here).
        """
        labels = self._streams.labels(service, level, kind)
        if self._closed:
            self.metrics.dropped("closed", 1)
            return False
        if self._queue.qsize() >= self._capacity:
            self.metrics.dropped("queue_full", 1)
            return False
        # To the microsecond a float holds (int(created * 1e9) made .781 into .780999936).
        self._queue.put_nowait((labels, round(created * 1e6) * 1000, line))
        return True

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
        self.stop(timeout)
        super().close()

    def _finish(self, timeout: float) -> None:
        self._closed = True
        self._deadline = time.monotonic() + timeout
        self._queue.put_nowait(STOP)  # behind every line queued before close()

    def _after_stop(self) -> None:
        self._count_left_behind()
        self._client.close()
        self._spool.release()
        self.metrics.unwatch(self)

    def _count_left_behind(self) -> None:
        # Lines the worker could not take (it died, or a caller raced close()): counted, never
        # lost silently.
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not STOP:
                left += 1
        if left:
            self.metrics.dropped("closed", left)
