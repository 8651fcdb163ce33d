"""What `GET /api/v1/logs/health` says about the Loki shipper, and why it is degraded."""

from __future__ import annotations

from typing import Any, Protocol

from exporter.logs.loki_config import LokiConfig
from exporter.logs.push import PushResult


class _Shipper(Protocol):
    """What the health reads of either shipper (`FileShipper`, or `LokiShipper` on its own)."""

    config: LokiConfig
    last_result: PushResult | None
    last_success: float | None
    worker_errors: int
    last_worker_error: str | None

    @property
    def worker_alive(self) -> bool: ...

    @property
    def worker_failing(self) -> bool: ...

    @property
    def queue_lines(self) -> int: ...

    @property
    def queue_capacity(self) -> int: ...

    def spool_usage(self) -> tuple[int, int]: ...


def shipper_health(shipper: _Shipper | None) -> dict[str, Any]:
    """`status` (`ok` or `degraded`), every `reason` it is degraded, Loki, worker, queue and spool
    (the file shipper: the bytes of the daily files Loki has not acknowledged, and the batch
    waiting for a retry; the in-memory shipper: every slot of its spool directory, other
    processes' and abandoned ones too).

    Degraded while the last push failed (Loki unreachable, or a batch rejected: wrong
    credentials, a line too long), while a batch waits for a retry, or while the worker is dead
    or its last error came after its last successful push.
    """
    if shipper is None:
        return {"status": "ok", "reasons": [], "loki": {"configured": False}, "worker": None,
                "queue_lines": 0, "queue_capacity": 0, "spool_bytes": 0, "spool_batches": 0,
                "spool_max_bytes": 0}
    last = shipper.last_result
    reachable = None if last is None else last.outcome != "retry"
    spool_bytes, spool_batches = shipper.spool_usage()
    reasons: list[str] = []
    if last is not None and last.outcome == "retry":
        reasons.append("the last push to Loki failed; batches are spooled and retried")
    elif last is not None and last.outcome == "reject":
        reasons.append(f"Loki rejected the last batch with HTTP {last.status}; it was dropped")
    if spool_batches:
        reasons.append(f"{spool_batches} batches wait to be pushed again")
    if not shipper.worker_alive:
        reasons.append("the shipper's worker thread is not running")
    elif shipper.worker_failing:
        reasons.append("the shipper's worker failed since its last successful push")
    return {
        "status": "degraded" if reasons else "ok",
        "reasons": reasons,
        "loki": {
            "configured": True,
            "reachable": reachable,
            "last_status": None if last is None else last.status,
            "last_error": None if last is None or last.outcome == "ok" else last.detail[:200],
            "last_success": shipper.last_success,
        },
        "worker": {
            "alive": shipper.worker_alive,
            "failing": shipper.worker_failing,
            "errors": shipper.worker_errors,
            "last_error": shipper.last_worker_error,
        },
        "queue_lines": shipper.queue_lines,
        "queue_capacity": shipper.queue_capacity,
        "spool_bytes": spool_bytes,
        "spool_batches": spool_batches,
        "spool_max_bytes": shipper.config.spool_max_bytes,
    }
