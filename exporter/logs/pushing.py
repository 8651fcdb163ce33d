"""`PushingWorker`: what both Loki shippers share: one connection, pushes with exponential
backoff and full jitter (or `Retry-After`), the shipper's counters, and how the last push and the
last unexpected failure went (what the logs health reads)."""

from __future__ import annotations

import logging
import random
import time

from prometheus_client import CollectorRegistry

from exporter.logs.loki_config import LokiConfig
from exporter.logs.push import LokiClient, PushResult, refuses_metadata, without_metadata
from exporter.logs.shipper_metrics import ShipperMetrics, shipper_metrics_for
from exporter.worker import Worker

log = logging.getLogger("exporter.logs.loki")
_OVERDUE_GRACE = 10.0  # seconds stop() waits past its deadline once a push in flight is cut
# After Loki refused structured metadata, batches go without it for this long, then one tries
# with it again: a Loki whose schema or limits were changed meanwhile gets it, without a restart.
METADATA_RETRY_SECONDS = 3600.0


class PushingWorker(Worker):
    """A `Worker` thread that pushes to Loki; a subclass writes `_run` around `_push`.

    `_push` never raises: 2xx is `ok`, 429/5xx/network errors are `retry` (the next attempt is
    allowed after the backoff: see `_may_push`), other 4xx are `reject` (counted as dropped,
    logged). During `stop()`, `_deadline` is set and pushes are cut to fit in it.

    A Loki that takes no structured metadata (schema before v13, or
    `allow_structured_metadata: false`) answers 400 to a body that has some: the same lines
    are pushed again at once without it (Loki keeps the lines of a refused push that were
    valid, and drops them when they come again: same labels, timestamp and line), counted in
    `loki_shipper_lines_without_metadata_total`, said once in the log. Later batches go
    without it for `METADATA_RETRY_SECONDS`, then one tries with it again.
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
        self._metadata_refused_at: float | None = None  # monotonic; None: Loki takes it
        self._metadata_refusal_logged = False
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

    @property
    def sends_metadata(self) -> bool:
        """False while batches go without structured metadata (Loki refused it lately)."""
        refused = self._metadata_refused_at
        return refused is None or time.monotonic() - refused >= METADATA_RETRY_SECONDS

    def _push(self, body: bytes, lines: int) -> PushResult:
        plain = 0  # lines pushed without their structured metadata
        if not self.sends_metadata:
            body, plain = without_metadata(body)
        result = self._post(body)
        if not plain and result.outcome == "reject" and refuses_metadata(result):
            body, plain = without_metadata(body)
            self._refused_metadata(result)
            if plain:
                result = self._post(body)
        self.last_result = result
        if result.outcome == "ok":
            self.last_success = time.time()
            self._failures = 0
            self._next_attempt = 0.0
            self.metrics.sent.inc(lines)
            if plain:
                self.metrics.without_metadata.inc(plain)
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

    def _post(self, body: bytes) -> PushResult:
        timeout = self.config.push_timeout
        if self._deadline is not None:
            timeout = max(0.05, min(timeout, self._deadline - time.monotonic()))
        started = time.perf_counter()
        result = self._client.push(body, timeout)
        self.metrics.push_duration.observe(time.perf_counter() - started)
        return result

    def _refused_metadata(self, result: PushResult) -> None:
        self._metadata_refused_at = time.monotonic()
        if not self._metadata_refusal_logged:
            self._metadata_refusal_logged = True
            log.warning(
                "Loki refuses structured metadata (HTTP %s: %s): lines go without it (their "
                "trace_id and span_id stay in the line, read with `| json`), counted in "
                "loki_shipper_lines_without_metadata_total; tried again every %d s. Loki 3 with "
                "a tsdb schema v13 and allow_structured_metadata takes it",
                result.status, result.detail[:200], METADATA_RETRY_SECONDS)

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
