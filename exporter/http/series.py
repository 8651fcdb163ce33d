"""`Series`: one (method, route) pair's numbers in a single process, updated by each request
without a lock and folded into its histogram in batches (see `HttpCollector`)."""

from __future__ import annotations

import threading
from bisect import bisect_left
from time import perf_counter
from typing import Any


def escape_label(value: str) -> str:
    """A label value as the exposition formats quote it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


# Finished requests a series holds before a request folds them into its totals itself.
FOLD_AT = 256


class Series:
    """One (method, route) pair's numbers.

    A request's own work is two atomic list operations, no lock: `start()` appends to
    `active` (the in-progress gauge is its length) and `finish()` pops it and appends the
    request's four numbers to `pending`. `fold()` adds the pending numbers to the histogram
    under the lock, at each scrape and whenever `FOLD_AT` requests have piled up. A request that
    took the lock and updated the histogram itself ran that code cold, lock calls included,
    every time; a fold of a few hundred requests runs it warm.
    """

    __slots__ = (
        "active",
        "bounds",
        "counts",
        "exemplars",
        "labels",
        "lock",
        "method",
        "pending",
        "rendered",
        "route",
        "statuses",
        "sum",
        "version",
    )

    def __init__(self, bounds: tuple[float, ...], method: str, route: str) -> None:
        self.method, self.route = method, route
        self.labels = f'method="{escape_label(method)}",route="{escape_label(route)}"'
        self.version = 0  # bumped by every fold(): the scrape reuses text of an unchanged one
        self.rendered: list[tuple[int, str] | None] = [None] * 4
        self.bounds = bounds  # ends with +Inf
        self.counts = [0] * len(bounds)
        # The latest (trace id, seconds, perf_counter() at the end) of each bucket.
        self.exemplars: list[tuple[str, float, float] | None] = [None] * len(bounds)
        self.sum = 0.0
        self.statuses: dict[int, int] = {}
        self.active: list[None] = []
        # status, seconds, trace id, perf_counter() at the end; four items per request.
        self.pending: list[Any] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        self.active.append(None)

    def finish(
        self, status: int, seconds: float, trace_id: str, ended: float | None = None
    ) -> None:
        """`ended`: `perf_counter()` when the response completed (the exemplar's time)."""
        self.active.pop()
        pending = self.pending
        pending += (status, seconds, trace_id, perf_counter() if ended is None else ended)
        if len(pending) >= 4 * FOLD_AT:
            self.fold()

    def failed(self, trace_id: str, error: BaseException) -> None:
        """An exception escaped the app during the request `trace_id`: the default names do not
        record it (its status, 500 when none was sent, is counted)."""

    def fold(self) -> None:
        """Add the requests finished since the last fold to the histogram and the counts."""
        with self.lock:
            pending = self.pending
            size = len(pending)
            if not size:
                return
            # Only fold() removes items, under the lock; finish() appends after them meanwhile.
            batch = pending[:size]
            del pending[:size]
            bounds, counts, exemplars, statuses = (
                self.bounds, self.counts, self.exemplars, self.statuses
            )
            total = self.sum
            items = iter(batch)
            for status, seconds, trace_id, ended in zip(items, items, items, items, strict=True):
                index = bisect_left(bounds, seconds)  # first bucket with seconds <= le
                counts[index] += 1
                total += seconds
                exemplars[index] = (trace_id, seconds, ended)
                if status in statuses:
                    statuses[status] += 1
                else:
                    statuses[status] = 1
            self.sum = total
            self.version += 1
