"""Frames: each scrape reduced to the few sums the signals read, kept for one window.

A scrape of an app holds thousands of samples (routes x methods x statuses x buckets); the
signals need a few dozen numbers of it: every counter summed per instance (and per `le` for
histograms), every gauge per subject. A `Reducer` reduces the samples of each interval (one
registry, or every scraped target) in one pass; `Window` hands the frames of the last window
to the queries, with a cache so that signals sharing a rate compute it once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs, empty values left out
Key = tuple[str, ...]  # a series' values of an input's `keep` labels, in that order


@functools.lru_cache(maxsize=256)
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


@dataclass(frozen=True)
class Input:
    """The series of one metric that match `matchers`, reduced per `keep` labels: counters
    summed, gauges the highest."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]
    kind: Literal["counter", "gauge"]
    keep: tuple[str, ...]  # as the series name them
    names: tuple[str, ...] = ()  # our names of `keep`, where they differ

    @property
    def labels(self) -> tuple[str, ...]:
        """Our names of the kept labels, in `keep`'s order."""
        return self.names or self.keep

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when `labels` satisfy every matcher (regexes anchored, as in PromQL)."""
        for label, op, value in self.matchers:
            actual = labels.get(label, "")
            if op == "=":
                ok = actual == value
            elif op == "!=":
                ok = actual != value
            else:
                ok = _pattern(value).fullmatch(actual) is not None
                if op == "!~":
                    ok = not ok
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class Frame:
    """What one interval's scrapes said, reduced: input -> series key -> value."""

    at: float  # time.monotonic(): windows and rates are measured in it
    wall: float  # time.time(): for people and the API
    values: Mapping[Input, Mapping[Key, float]] = field(default_factory=dict)
    # Counters only: the sum of the series' raw values, whose distance to zero bounds how far
    # back `rate()` extrapolates (see `promql.extrapolated_rate`).
    raw: Mapping[Input, Mapping[Key, float]] = field(default_factory=dict)


def labels_of(keep: Sequence[str], key: Key, by: Iterable[str] | None) -> Labels:
    """The labels of a series `key`, only those in `by` (all of them when None)."""
    wanted = None if by is None else set(by)
    return tuple(sorted(
        (name, value) for name, value in zip(keep, key, strict=True)
        if value and (wanted is None or name in wanted)
    ))


Sample = tuple[str, Mapping[str, str], float]  # (name, labels, value) as a scrape gives it


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")


def parse_labels(series: str) -> dict[str, str]:
    """The labels of a series as the text format writes it: `name{a="1",b="x\\"y"}`."""
    inner = series[series.find("{") + 1:series.rfind("}")] if "{" in series else ""
    return {k: _ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), v)
            if "\\" in v else v for k, v in _LABEL.findall(inner)}


class _Series:
    """One series as the reducer knows it: its last raw value, the frame it was last seen in,
    and which inputs read it under which key (worked out once, when it is first seen)."""

    __slots__ = ("last", "reads", "seen")

    def __init__(self, reads: tuple[tuple[Input, Key], ...]) -> None:
        self.last: float | None = None
        self.seen = -1
        self.reads = reads


class Reducer:
    """Reduces each interval's samples, from one registry or several instances, to a `Frame`.

    Gauges keep the highest value per key. Counters are not summed as they are: each series'
    increase since its last sample (the value itself after a reset, nothing for its first
    sample) is added to a running total per key, which is what `rate()` sees series by series.
    A sum of raw values would read a new series' count, or a series that goes away, as traffic
    or as a reset. So the in-process rate equals Prometheus' sum of per-series rates whenever
    the series are steady; inside the first window after a restart it may differ by the
    extrapolation Prometheus applies to each series near zero. Series unseen for `forget`
    frames are forgotten (a target back after longer reads as new).

    What a series feeds (which inputs, under which keys) is worked out when it is first seen
    and kept with it: a later interval costs a dictionary look-up per sample, which is what
    makes fifty targets of 2,000 series each affordable (bench/sidecar_scale.py).
    """

    def __init__(self, inputs: Iterable[Input], forget: int = 360) -> None:
        self._by_name: dict[str, list[Input]] = {}
        for source in dict.fromkeys(inputs):  # each input once, in order
            self._by_name.setdefault(source.name, []).append(source)
        self._forget = forget
        self._series: dict[str, dict[Any, _Series]] = {}  # per instance, by series identity
        self._totals: dict[Input, dict[Key, float]] = {}
        self._values: dict[Input, dict[Key, float]] = {}
        self._raw: dict[Input, dict[Key, float]] = {}
        self._fresh: set[tuple[Input, Key]] = set()  # keys first seen in this interval
        self._frames = 0  # frames made so far: the number of the one being filled
        # What series feed, shared: the routes of one target all feed the same few keys.
        self._reads: dict[tuple[tuple[Input, Key], ...], tuple[tuple[Input, Key], ...]] = {}

    @property
    def names(self) -> frozenset[str]:
        """The sample names any input reads (a scrape parser may skip the others)."""
        return frozenset(self._by_name)

    def _plan(self, name: str, labels: Mapping[str, str], instance: str) -> _Series:
        reads = tuple(
            (source, tuple((labels.get(label) or instance) if label == "instance" else
                           labels.get(label, "") for label in source.keep))
            for source in self._by_name.get(name, ()) if source.matches(labels))
        return _Series(self._reads.setdefault(reads, reads))

    def add(self, samples: Iterable[Sample], instance: str = "") -> None:
        """Reduce `samples` (name, labels, value) of one source; `instance` labels those
        without one."""
        known = self._series.setdefault(instance, {})
        by_name = self._by_name
        for name, labels, value in samples:
            if name not in by_name or value != value:  # not read, or NaN (a stale marker)
                continue
            ident = (name, tuple(sorted(labels.items())))
            series = known.get(ident)
            if series is None:
                series = known[ident] = self._plan(name, labels, instance)
            self._take(series, value)

    def add_text(self, samples: Iterable[tuple[str, str, float]], instance: str) -> None:
        """Reduce samples as a scrape's text gives them: (`name{labels}` as written, name,
        value); the labels are parsed once per series, when it is first seen."""
        known = self._series.setdefault(instance, {})
        for text, name, value in samples:
            series = known.get(text)
            if series is None:
                series = known[text] = self._plan(name, parse_labels(text), instance)
            if value == value:
                self._take(series, value)

    def _take(self, series: _Series, value: float) -> None:
        previous = series.last if self._frames - series.seen <= self._forget else None
        series.last, series.seen = value, self._frames
        for source, key in series.reads:
            values = self._values.setdefault(source, {})
            if source.kind == "gauge":
                if key not in values or value > values[key]:
                    values[key] = value
                continue
            totals = self._totals.setdefault(source, {})
            if key not in totals:  # a new key starts where its series stand
                totals[key] = 0.0
                self._fresh.add((source, key))
            if (source, key) in self._fresh:
                increase = value
            elif previous is None:  # a series new to a known key: its first sample counts nothing
                increase = 0.0
            else:
                increase = value if value < previous else value - previous
            totals[key] += increase
            values[key] = totals[key]
            raw = self._raw.setdefault(source, {})
            raw[key] = raw.get(key, 0.0) + value

    def frame(self, at: float, wall: float) -> Frame:
        """The frame of what was added since the last frame; the next interval starts."""
        frame = Frame(at, wall, self._values, self._raw)
        self._values, self._raw = {}, {}
        self._fresh = set()
        self._frames += 1
        if self._frames % 64 == 0:  # now and then: a scan of every series costs
            stale = self._frames - self._forget
            for instance, known in list(self._series.items()):
                kept = {k: v for k, v in known.items() if v.seen >= stale}
                if kept:
                    self._series[instance] = kept
                else:
                    del self._series[instance]
        return frame


@dataclass
class Window:
    """The frames a query evaluates over (oldest first), the window's length in seconds, and
    a cache of what queries computed on them."""

    frames: Sequence[Frame]
    seconds: float
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def end(self) -> float:
        """The newest frame's time: every window ends there."""
        return self.frames[-1].at if self.frames else 0.0
