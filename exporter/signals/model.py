"""What a signal is, and the catalogue that holds every signal once."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from exporter.signals.frames import Labels, Window
from exporter.signals.query import Gauge, Level, Query

Unit = Literal["ratio", "seconds", "per_second", "count"]
# The health check a signal belongs to: system, http, dependency, queue, celery, or a check of
# its own (any other name).
Group = str


@dataclass(frozen=True)
class Fixture:
    """Labels of the series a promtool test feeds the signal's rules with.

    `labels` go on every input series; for a ratio, `numerator` marks the series that count in
    both parts (a 5xx response) and `other` those that count in the denominator only.
    """

    labels: dict[str, str] = field(default_factory=dict)
    numerator: dict[str, str] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)
    job: str = "exporter"
    port: int = 9480


@dataclass(frozen=True)
class Display:
    """Where dashboards show the signal: a timeseries panel (signals with the same panel title
    share it), its legend, optionally a stat panel in the dashboard's first row; and whether
    the status page gives it a tile."""

    dashboard: str  # a key of render.links.DASHBOARDS
    panel: str
    legend: str = "{{service}}"
    stat: str = ""
    tile: bool = True  # a tile with a sparkline on the status page


@dataclass(frozen=True)
class Signal:
    """One signal, defined once: every rule, test, panel, check and API value derives from it."""

    name: str  # what thresholds.yaml's `signal:` names
    title: str  # for people: tiles, panels, health details ("Error rate")
    unit: Unit
    group: Group  # the health check it belongs to
    query: Query
    description: str  # one sentence for docs/signals.md
    alert_text: str  # the alert description's opening, a Go template ({window} filled in)
    display: Display
    fixture: Fixture = field(default_factory=Fixture)
    record: str = ""  # recording rule of the value: "{level}:...:ratio_rate{window}"
    levels: tuple[Level, ...] = ()  # where it is recorded; alerts use the first
    rule_group: str = ""  # the recording rule group

    @property
    def per_series(self) -> bool:
        """True when alerts judge each series (gauges), False when one value per group."""
        return isinstance(self.query, Gauge)

    @property
    def subject(self) -> tuple[str, ...]:
        """The labels that tell the signal's subjects apart (mountpoint, name, task...)."""
        return self.query.subject

    def subject_key(self, labels: Labels) -> str:
        """The subject of a value as details, tiles and the API name it: `/` (a mount point),
        `db` (a dependency, by name), `redis/jobs` (backend/queue), a task; "" for none."""
        return "/".join(v for k, v in labels if k in self.subject and k != "kind")

    def grouping(self, per_instance: bool) -> tuple[str, ...]:
        """The labels values are grouped by: the subject, after `instance` when `per_instance`.

        Alerts group as the rules do: a gauge per series (so per instance), a rate per subject
        summed over every instance (`sum by (service, task)`).
        """
        return ("instance",) * per_instance + (() if self.per_series else self.subject)

    def promql(self, window: str, per_instance: bool = False, *selector: str) -> str:
        """The value as one flat PromQL expression (no recording rules needed), grouped as
        `grouping` says, over the series `selector` picks (e.g. `job="api"`)."""
        return self.query.promql(window, self.grouping(per_instance), *selector)

    def evaluate(self, window: Window, per_instance: bool = False) -> dict[Labels, float]:
        """The value over `window`, in process, grouped as `grouping` says."""
        return self.query.evaluate(window, self.grouping(per_instance))

    def alert_values(self, window: Window) -> dict[Labels, float]:
        """The values an alert on the signal judges: what its Prometheus rule sees."""
        return self.evaluate(window, per_instance=self.per_series)

    def format(self, value: float) -> str:
        """`value` for people, in the signal's unit: 8.4 %, 760 ms, 1.2 s, 12.5/s, 42."""
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if self.unit == "ratio":
            return f"{value * 100:.3g} %"
        if self.unit == "seconds":
            return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
        if self.unit == "per_second":
            return f"{value:.3g}/s"
        return f"{value:g}"


class Catalogue:
    """Every signal by name, in the order rules, panels and tiles list them."""

    def __init__(self, signals: list[Signal]) -> None:
        self._signals: dict[str, Signal] = {}
        for signal in signals:
            self.add(signal)

    def add(self, signal: Signal) -> None:
        """Add `signal`; its name must be new, and a recorded signal needs levels."""
        if signal.name in self._signals:
            raise ValueError(f"signal {signal.name!r} is already in the catalogue")
        if bool(signal.record) and not signal.levels:
            raise ValueError(f"signal {signal.name!r}: a recorded signal needs levels")
        for level in signal.levels:
            missing = set(signal.subject) - set(level.labels)
            if missing:
                raise ValueError(f"signal {signal.name!r}: level {level.name} must keep the "
                                 f"subject labels {sorted(missing)}")
        self._signals[signal.name] = signal

    def remove(self, name: str) -> None:
        """Take the signal `name` out (KeyError when absent)."""
        del self._signals[name]

    @contextmanager
    def added(self, signal: Signal) -> Iterator[Signal]:
        """`signal` in the catalogue for the duration of the block (tests, extensions)."""
        self.add(signal)
        try:
            yield signal
        finally:
            self.remove(signal.name)

    def __iter__(self) -> Iterator[Signal]:
        return iter(list(self._signals.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._signals

    def get(self, name: str) -> Signal:
        """The signal `name`; KeyError naming the known ones when there is none."""
        try:
            return self._signals[name]
        except KeyError:
            raise KeyError(f"no signal {name!r}; known: {', '.join(self._signals)}") from None

    def names(self) -> list[str]:
        """Every signal's name, in order."""
        return list(self._signals)
