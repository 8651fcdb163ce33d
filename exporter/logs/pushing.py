"""`PushingWorker`: what both Loki shippers share: one connection, pushes with exponential
backoff and full jitter (or `Retry-After`), the shipper's counters, and how the last push and the
last unexpected failure went (what the logs health reads)."""

from __future__ import annotations

import logging
import random
import time

from prometheus_client import CollectorRegistry

from exporter.logs.loki_config import LokiConfig
from exporter.logs.push import LokiClient, PushResult
from exporter.logs.shipper_metrics import ShipperMetrics, shipper_metrics_for
from exporter.worker import Worker

log = logging.getLogger("exporter.logs.loki")
_OVERDUE_GRACE = 10.0  # seconds stop() waits past its deadline once a push in flight is cut


class PushingWorker(Worker):
    """A `Worker` thread that pushes to Loki; a subclass writes `_run` around `_push`.

    `_push` never raises: 2xx is `ok`, 429/5xx/network errors are `retry` (the next attempt is
    allowed after the backoff: see `_may_push`), other 4xx are `reject` (counted as dropped,
    logged). During `stop()`, `_deadline` is set and pushes are cut to fit in it.
    """

    def __init__(
        self, what: str, config: LokiConfig, registry: CollectorRegistry | None = None
    ) -> None:
        super().__init__(what, stop_timeout=config.close_timeout)
        self.config = config
        self._client = LokiClient(
            config.url, config.tenant, config.username, config.password, config.bearer_token
        )
        self.metrics: ShipperMetrics = shipper_metrics_for(registry)
        self._next_attempt = 0.0
        self._failures = 0
        self._failure_logged = -60.0
        self._deadline: float | None = None
        self.last_result: PushResult | None = None
        self.last_success: float | None = None
        self.worker_errors = 0
        self.last_worker_error: str | None = None
        self.last_worker_error_at: float | None = None

    @property
    def worker_alive(self) -> bool:
        """True while the worker thread runs (it ends only after `close()`)."""
        return self.alive

    @property
    def worker_failing(self) -> bool:
        """True when the worker's last failure came after its last successful push."""
        failed = self.last_worker_error_at
        return failed is not None and (self.last_success is None or failed >= self.last_success)

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

    def _note_failure(self, exc: Exception, lost: int) -> None:
        """An unexpected error in the worker: counted (`lost` lines as `failed`), logged at
        most once a minute while it repeats; the caller carries on after a short pause."""
        if lost:
            self.metrics.dropped("failed", lost)
        self.worker_errors += 1
        self.last_worker_error = f"{type(exc).__name__}: {exc}"[:200]
        self.last_worker_error_at = time.time()
        now = time.monotonic()
        if now - self._failure_logged >= 60.0:
            self._failure_logged = now
            log.error("Loki shipper worker failed (%d so far), dropped %d lines: %s",
                      self.worker_errors, lost, self.last_worker_error, exc_info=exc)
        time.sleep(0.05)  # never a hot loop

    def _forget_parent(self) -> None:
        super()._forget_parent()
        self._client.close()  # the parent's connection: this closes only the child's copy
        self._deadline = None

    def _overdue(self) -> float:
        # A push that began before stop() still has its own, longer timeout: cut it short.
        self._client.abort()
        return _OVERDUE_GRACE
