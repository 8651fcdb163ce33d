"""A live tail of the log lines this process writes, fanned out to bounded subscriber queues.

The daily-files writer thread calls `LogTail.publish` with each batch right after writing it, so
a subscriber sees exactly the lines of the files, in file order. Each subscriber holds at most
`max_lines` lines: when a slow client falls behind, newer lines are skipped and counted, and the
client is told how many (`{"type": "skipped", "count": N}`). Nothing grows without bound.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.logs.formatter import as_in_line
from exporter.logs.query import LEVELS
from exporter.registry_parts import parts_on

_LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}


@dataclass(frozen=True)
class TailFilter:
    """The `/logs` filters: minimum level, exact trace id, text in the message."""

    level: str | None = None
    trace_id: str | None = None
    contains: str | None = None

    def matches(self, line: str) -> bool:
        """True when the JSON line passes every filter (a line that is not JSON never does)."""
        if self.level is None and self.trace_id is None and self.contains is None:
            return True
        # Cheap substring checks first: most lines are never parsed (as the file search does).
        if self.trace_id is not None and self.trace_id not in line:
            return False
        if self.contains is not None and as_in_line(self.contains) not in line:
            return False
        try:
            record = json.loads(line)
        except ValueError:
            return False
        if not isinstance(record, dict):
            return False
        if self.level is not None:
            rank = _LEVEL_RANK.get(str(record.get("level", "")).upper(), -1)
            if rank < _LEVEL_RANK[self.level.upper()]:
                return False
        if self.trace_id is not None and record.get("trace_id") != self.trace_id:
            return False
        return self.contains is None or self.contains in str(record.get("message", ""))


class TailSubscription:
    """One client's bounded queue; filled by the writer thread, drained on the event loop."""

    def __init__(
        self, tail: LogTail, stream: int, where: TailFilter, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.stream = stream
        self.filter = where
        self._tail = tail
        self._loop = loop
        self._lines: deque[str] = deque()
        self._skipped = 0
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._wake_pending = False

    def offer(self, lines: list[str]) -> None:
        """Queue the matching `lines` (writer thread); past the bound they are counted, not kept."""
        matching = [line for line in lines if self.filter.matches(line)]
        if not matching:
            return
        with self._lock:
            room = self._tail.max_lines - len(self._lines)
            taken = matching[: max(room, 0)]
            self._lines.extend(taken)
            skipped = len(matching) - len(taken)
            self._skipped += skipped
            depth = len(self._lines)
            wake = not self._wake_pending
            self._wake_pending = True
        self._tail.count(depth, skipped)
        if wake:
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:  # the loop is closed: the client is gone
                pass

    async def next_batch(self) -> tuple[list[str], int]:
        """Wait for lines; returns (lines, how many were skipped after them)."""
        await self._ready.wait()
        with self._lock:
            self._ready.clear()
            self._wake_pending = False
            lines, skipped = list(self._lines), self._skipped
            self._lines.clear()
            self._skipped = 0
        return lines, skipped

    def queued(self) -> int:
        """Lines waiting for the client right now."""
        with self._lock:
            return len(self._lines)

    def close(self) -> None:
        """Stop receiving lines (idempotent)."""
        self._tail.unsubscribe(self)


class TooManySubscribers(RuntimeError):
    """The tail already serves its maximum number of clients."""


class LogTail:
    """Fans each written batch out to the subscribers; `publish` is the daily files' listener.

    Its `log_tail_*` metrics are read by the registry's one `TailMetrics`: a newer tail on the
    same registry replaces the older one there.
    """

    def __init__(
        self, max_lines: int = 1000, max_subscribers: int = 16,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.max_lines = max_lines
        self.max_subscribers = max_subscribers
        self._subscribers: list[TailSubscription] = []
        self._lock = threading.Lock()
        self.skipped_total = 0
        self.peak_queued = 0  # the most lines one client ever had waiting: never above max_lines
        registry = REGISTRY if registry is None else registry
        parts_on(registry).get_or_create("log tail metrics", lambda: TailMetrics(registry)).follow(
            self)

    def subscribe(
        self, stream: int, where: TailFilter, loop: asyncio.AbstractEventLoop
    ) -> TailSubscription:
        """A new subscription to `stream` (a `files` kind bit); `TooManySubscribers` when full."""
        subscription = TailSubscription(self, stream, where, loop)
        with self._lock:
            if len(self._subscribers) >= self.max_subscribers:
                raise TooManySubscribers(f"the live tail serves {self.max_subscribers} clients")
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: TailSubscription) -> None:
        """Forget `subscription` (idempotent)."""
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)

    def publish(self, written: dict[int, list[str]]) -> None:
        """Hand each subscriber the lines just written to its stream (writer thread)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            lines = written.get(subscription.stream)
            if lines:
                subscription.offer(lines)

    def count(self, depth: int, skipped: int) -> None:
        """Record a subscriber's queue depth and the lines it skipped."""
        with self._lock:
            self.peak_queued = max(self.peak_queued, depth)
            self.skipped_total += skipped

    def collect(self) -> Iterator[Metric]:
        """The tail's clients, deepest queue, its peak and the skipped lines."""
        with self._lock:
            subscribers = list(self._subscribers)
            peak, skipped = self.peak_queued, self.skipped_total
        yield GaugeMetricFamily(
            "log_tail_clients", "Clients following the live log tail.", len(subscribers)
        )
        yield GaugeMetricFamily(
            "log_tail_queued_lines", "Live-tail lines waiting for the slowest client.",
            max((s.queued() for s in subscribers), default=0),
        )
        yield GaugeMetricFamily(
            "log_tail_queued_lines_peak",
            "The most live-tail lines one client ever had waiting (bounded by the queue size).",
            peak,
        )
        yield CounterMetricFamily(
            "log_tail_skipped_lines", "Live-tail lines skipped because a client fell behind.",
            skipped,
        )


class TailMetrics(Collector):
    """The `log_tail_*` metrics of a registry: those of the newest tail made on it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._tail: LogTail | None = None
        registry.register(self)

    def follow(self, tail: LogTail) -> None:
        """Report `tail`'s metrics from now on (instead of an older tail's)."""
        self._tail = tail

    def describe(self) -> list[Metric]:
        """Nothing: registering the collector must not read a tail."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The followed tail's metrics (nothing before a tail exists)."""
        tail = self._tail
        if tail is not None:
            yield from tail.collect()
