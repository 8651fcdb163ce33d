"""`rate()` and `histogram_quantile()` computed in process as Prometheus 2.x computes them.

The in-process alerts must reach the verdict Prometheus reaches on the same samples, so the
two functions follow Prometheus' own algorithms (promql/functions.go, promql/quantile.go, as of
2.42): a range includes both its ends; `rate` extrapolates towards the range's ends (never past
the counter's zero point) and adds back what a counter reset took; `histogram_quantile`
interpolates linearly inside the bucket that holds the rank and answers NaN without data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[float, float]  # (seconds, value)


def in_range(points: Sequence[Point], start: float, end: float) -> list[Point]:
    """The points a range selector `[end - start]` at `end` selects: start <= t <= end."""
    return [p for p in points if start <= p[0] <= end]


def extrapolated_rate(
    points: Sequence[Point], start: float, end: float, first_raw: float | None = None
) -> float | None:
    """Per-second rate of a counter over [start, end], or None with fewer than two points.

    `points` are the counter's samples inside the range, oldest first. `first_raw`: the
    counter's own value at the first point when `points` carry a running total instead (the
    distance to zero that bounds the extrapolation).
    """
    if len(points) < 2:
        return None
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    increase = last_v - first_v
    previous = 0.0
    for _, value in points:  # a drop is a reset: what was counted before it still counts
        if value < previous:
            increase += previous
        previous = value
    sampled = last_t - first_t
    if sampled <= 0:
        return None
    average = sampled / (len(points) - 1)
    to_start, to_end = first_t - start, end - last_t
    zero = first_v if first_raw is None else first_raw
    if increase > 0 and zero >= 0:
        # Never extrapolate below zero: a counter that started inside the range began at 0.
        to_start = min(to_start, sampled * (zero / increase))
    threshold = average * 1.1
    covered = sampled
    covered += to_start if to_start < threshold else average / 2
    covered += to_end if to_end < threshold else average / 2
    return increase * (covered / sampled) / (end - start)


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The q-quantile of cumulative `(upper bound, count)` buckets; NaN when there is none.

    As `histogram_quantile`: the buckets must end with +Inf; a rank in the +Inf bucket answers
    the highest finite bound.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return math.nan
    merged: list[list[float]] = []
    for upper, count in ordered:  # equal bounds from different series add up
        if merged and merged[-1][0] == upper:
            merged[-1][1] += count
        else:
            merged.append([upper, count])
    highest = 0.0
    for bucket in merged:  # counts read at slightly different times may dip: never go down
        highest = bucket[1] = max(bucket[1], highest)
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next(i for i, (_, count) in enumerate(merged) if count >= rank or i == len(merged) - 1)
    if index == len(merged) - 1:
        return merged[-2][0]
    if index == 0 and merged[0][0] <= 0:
        return merged[0][0]
    lower, below = (merged[index - 1][0], merged[index - 1][1]) if index > 0 else (0.0, 0.0)
    upper, count = merged[index]
    if count == below:  # only for q = 0 over empty leading buckets: Prometheus' 0/0
        return math.nan
    return lower + (upper - lower) * ((rank - below) / (count - below))
