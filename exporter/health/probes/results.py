"""What one probe round learned about a dependency or a queue."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProbeResult:
    """A dependency's last probe: up or down (with why), and the round-trip latency."""

    up: bool
    latency: float | None  # seconds of the PING / SELECT 1 round trip; None when down
    reason: str  # "ok", or why the dependency reads down (password-free)
    checked_at: float  # wall-clock time of the probe (time.time())
    details: dict[str, float] = field(default_factory=dict)  # e.g. Redis used memory


@dataclass(frozen=True)
class QueueReading:
    """A queue's last reading; a queue that does not exist reads depth 0 with `exists` False."""

    ok: bool  # the server answered
    exists: bool
    depth: int
    consumers: int | None  # None where the backend cannot tell (Redis lists)
    pending: dict[str, int]  # stream consumer group -> entries delivered but not acknowledged
    structure: str  # "list", "stream", "queue" (RabbitMQ) or "none"
    reason: str
    checked_at: float
