"""The in-process history: each interval, every signal of the catalogue evaluated over its window.

Every `record()` reduces one scrape of the source (the app's registry, summed over its workers
in multiprocess mode) into a frame, keeps the frames of the last window, and evaluates each
signal over them as its Prometheus rule does (`signals`): rates and quantiles over the rule's
window (`render.rate_window`), gauges at their newest sample. The values form one `Point`; the
points of the last hour (EXPORTER_HISTORY_WINDOW_SECONDS) are the sparklines, the newest one is
what health, tiles and in-process alerts judge.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from exporter.config import MAX_SAMPLES, ring_length
from exporter.health.series import Layouts
from exporter.host import cpu_reader
from exporter.signals import CATALOGUE, Catalogue, Frame, Labels, Reducer, Window

# Adds one interval's samples to a reducer: the app's registry, or scraped targets.
Source = Callable[[Reducer], None]


def registry_source(registry: CollectorRegistry, only: tuple[str, ...] = ()) -> Source:
    """A source that reads `registry` (its own CPU window, apart from the scrapes'); the
    families whose name starts with one of `only`, when given."""

    def read(reducer: Reducer) -> None:
        with cpu_reader("history"):
            for family in registry.collect():
                if not only or family.name.startswith(only):
                    reducer.add((s.name, s.labels, s.value) for s in family.samples)

    return read


def both(*sources: Source) -> Source:
    """A source that reads each of `sources` in turn."""

    def read(reducer: Reducer) -> None:
        for source in sources:
            source(reducer)

    return read


Values = Mapping[str, Mapping[Labels, float]]  # signal name -> subject labels -> value


@dataclass(frozen=True)
class Point:
    """Every signal's values at `ts`, by signal name and labels (the signal's subject)."""

    ts: float  # wall-clock time (time.time()) of the frame
    values: Values  # the overview: one value per subject, summed over (or the highest of) all
    alerting: Values  # what alerts judge: gauges per series, the rest as the overview
    instances: Mapping[str, Values] = field(default_factory=dict)  # per watched instance

    def value(self, signal: str, labels: Labels = (), instance: str | None = None) -> (
            float | None):
        """One value of the overview (or of one instance), None when there is none."""
        values = self.values if instance is None else self.instances.get(instance, {})
        return values.get(signal, {}).get(labels)

    def of(self, instance: str | None) -> Values:
        """The overview, or one instance's values (empty for an instance unknown here)."""
        return self.values if instance is None else self.instances.get(instance, {})


def split_instances(
    signals: Mapping[str, Mapping[Labels, float]],
) -> dict[str, dict[str, dict[Labels, float]]]:
    """{signal: {labels with instance: v}} -> {instance: {signal: {labels without it: v}}}."""
    out: dict[str, dict[str, dict[Labels, float]]] = {}
    for name, values in signals.items():
        for labels, value in values.items():
            instance = dict(labels).get("instance", "")
            rest = tuple(pair for pair in labels if pair[0] != "instance")
            out.setdefault(instance, {}).setdefault(name, {})[rest] = value
    return out


def _shared(
    instances: Mapping[str, Values], values: Values
) -> dict[str, dict[str, Mapping[Labels, float]]]:
    """`instances`, where an instance's values of a signal equal the overview's holding the
    overview's own mapping: with one target (the demo, a lone app) every signal is the same,
    and the hour of points then holds one copy instead of two (measured: +1.15 MB per 10 min
    of the 1-hour ring filling with two copies, bench/sidecar_memory.py)."""
    out: dict[str, dict[str, Mapping[Labels, float]]] = {}
    for instance, signals in instances.items():
        out[instance] = {name: values[name] if values.get(name) == mine else mine
                         for name, mine in signals.items()}
    return out


PointMaker = Callable[[], Point]  # makes the point of now by itself (queries Prometheus)


class History:
    """Frames of the last signal window and points of the last history window, oldest first.

    The points come from `source` (samples reduced into frames and evaluated here), or from
    `points_from`, which makes each point itself (the over-Prometheus mode runs the PromQL).
    """

    def __init__(
        self,
        source: Source | CollectorRegistry | None,
        *,
        points_from: PointMaker | None = None,
        signal_window: float,
        interval: float = 10.0,
        window: float = 3600.0,
        catalogue: Catalogue = CATALOGUE,
        per_instance: bool = False,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        length = ring_length(window, interval)
        if length > MAX_SAMPLES:
            raise ValueError(
                f"{length} samples for {window:g} s every {interval:g} s; at most {MAX_SAMPLES}"
            )
        self._source = registry_source(source) if isinstance(source, CollectorRegistry) else (
            source)
        self._points_from = points_from
        self.failing = False  # the last point could not be made: the newest one is stale
        self.interval = interval
        self.window = window  # how far back points are kept
        self.signal_window = signal_window  # what rates and quantiles are taken over
        self._catalogue = catalogue
        self._per_instance = per_instance  # several apps are watched: keep each one's values
        self._reducer = Reducer(i for s in catalogue for i in s.query.inputs())
        self._clock = clock
        self._monotonic = monotonic
        # One frame more than the window holds, so a rate always sees the window's start.
        self._frames: deque[Frame] = deque(maxlen=math.ceil(signal_window / interval) + 2)
        self._points: deque[Point] = deque(maxlen=length)
        self._layouts = Layouts()  # each signal's values kept as a Series (see _compact)
        self._lock = threading.Lock()

    def record(self) -> Point:
        """Read the source now, evaluate every signal, append the point; returns it. When the
        point cannot be made (Prometheus down), raises and keeps the points it had."""
        if self._points_from is not None:
            try:
                point = self._points_from()
            except Exception:
                self.failing = True  # the points kept are now stale
                raise
            with self._lock:
                self._points.append(point)
            self.failing = False
            return point
        with self._lock:
            assert self._source is not None
            self._source(self._reducer)
            self._frames.append(self._reducer.frame(self._monotonic(), self._clock()))
            frames = list(self._frames)
            window = Window(frames, self.signal_window)
            last = self._points[-1] if self._points else None
            compact = self._compact
            values = compact({s.name: s.evaluate(window) for s in self._catalogue},
                             last.values if last else None)
            alerting = compact({
                s.name: s.alert_values(window) if s.per_series else values[s.name]
                for s in self._catalogue
            }, last.alerting if last else None)
            instances = {
                instance: compact(signals, last.instances.get(instance) if last else None)
                for instance, signals in split_instances(
                    {s.name: s.evaluate(window, per_instance=True) for s in self._catalogue}
                ).items()
            } if self._per_instance else {}
            point = Point(frames[-1].wall, values, alerting, _shared(instances, values))
            self._points.append(point)
            return point

    def _compact(self, values: Values, last: Values | None) -> Values:
        """`values` with each signal's as a `Series` (its label sets held once, by a layout
        shared with every point of the same subjects), holding the previous point's where it
        is equal: the hour of points kept grew by 5 KB a point as dicts (about 1 MB per 10
        minutes at 5 s), by 10 KB watching the demo shop."""
        out: dict[str, Mapping[Labels, float]] = {}
        unchanged = last is not None and len(last) == len(values)
        for name, mapping in values.items():
            series = self._layouts.series(mapping)
            before = last.get(name) if last is not None else None
            if before is not None and before == series:
                out[name] = before
            else:
                unchanged = False
                out[name] = series
        return last if unchanged and last is not None else out

    def points(self, seconds: float | None = None) -> list[Point]:
        """Points of the last `seconds` (all of them when None), oldest first."""
        with self._lock:
            ring = list(self._points)
        if seconds is None or not ring:
            return ring
        since = ring[-1].ts - seconds
        return [p for p in ring if p.ts >= since]

    def extend(self, points: list[Point]) -> None:
        """Add points made elsewhere (a history read back from Prometheus), oldest first, before
        any recorded since."""
        with self._lock:
            newer = list(self._points)
            self._points.clear()
            first = newer[0].ts if newer else float("inf")
            self._points.extend(p for p in points if p.ts < first)
            self._points.extend(newer)

    def replace(self, points: list[Point]) -> None:
        """Hold exactly `points` (another worker's history, read from the host's state)."""
        with self._lock:
            self._points.clear()
            self._points.extend(points)

    def latest(self) -> Point | None:
        """The newest point, or None before the first one."""
        with self._lock:
            return self._points[-1] if self._points else None
