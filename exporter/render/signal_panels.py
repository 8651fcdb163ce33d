"""The dashboard panels of the catalogue's signals: stat tiles, time series, per-route series.

Each signal names its dashboard and panel (`Display`); signals that name the same panel share
it (p50, p95 and p99 in one latency panel). The red threshold step is the lowest `above` of
the thresholds on the panel's signals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from exporter.render.grafana import panel, prom
from exporter.signals import CATALOGUE, Level, Signal
from exporter.signals.query import Gauge
from exporter.signals.rules import value_at
from exporter.thresholds import Thresholds

SERVICE = 'service=~"$service"'
INSTANCE = 'instance=~"$instance"'
ROUTE_LEVEL = "service_route"
_RECORD_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def lowest(thresholds: Thresholds, signals: Iterable[Signal]) -> float | None:
    """The lowest `above` of the thresholds on any of `signals` (the first line to show)."""
    names = {s.name for s in signals}
    found = [t.above for t in thresholds.items() if t.signal in names]
    return min(found) if found else None


def unit(signal: Signal) -> str:
    """Grafana's unit for the signal's values."""
    if signal.unit == "ratio":
        return "percentunit"
    if signal.unit == "seconds":
        return "s"
    if signal.unit == "per_second":
        return "reqps" if signal.group == "http" else "ops"
    return "short"


def selected(signal: Signal, level: Level | None, window: str, *matchers: str) -> str:
    """The signal's series at `level` (a recording rule where there is one), narrowed by
    `matchers` such as service=~"$service"."""
    if isinstance(signal.query, Gauge):
        return signal.query.metric.selector(*matchers)
    if level is None:  # not recorded: the flat expression, per service and subject
        return signal.query.promql(window, ("service", *signal.subject), *matchers)
    name = value_at(signal, level, window)
    if _RECORD_NAME.match(name):
        return f"{name}{{{', '.join(matchers)}}}"
    return signal.query.promql(window, level.labels, *matchers)


# Dashboards with a variable of their own for the signals' subject.
_SUBJECT_VARIABLES = {"celery": ('task=~"$task"',)}


def _matchers(signal: Signal) -> tuple[str, ...]:
    own = _SUBJECT_VARIABLES.get(signal.display.dashboard, ())
    return (SERVICE, INSTANCE, *own) if isinstance(signal.query, Gauge) else (SERVICE, *own)


def stat_panels(thresholds: Thresholds, dashboard: str, window: str) -> list[dict[str, Any]]:
    """The first row: one stat tile per signal that asks for one."""
    panels = []
    for signal in CATALOGUE:
        if signal.display.dashboard != dashboard or not signal.display.stat:
            continue
        level = signal.levels[0] if signal.levels else None
        aggregate = "sum" if signal.unit in ("per_second", "count") else "max"
        expr = f"{aggregate}({selected(signal, level, window, *_matchers(signal))})"
        panels.append(panel(signal.display.stat, [prom(expr)], kind="stat", unit=unit(signal),
                            threshold=lowest(thresholds, [signal]), width=6, height=4))
    return panels


def series_panels(thresholds: Thresholds, dashboard: str, window: str) -> list[dict[str, Any]]:
    """One time series panel per panel title, its signals' series as targets."""
    by_title: dict[str, list[Signal]] = {}
    for signal in CATALOGUE:
        if signal.display.dashboard == dashboard:
            by_title.setdefault(signal.display.panel, []).append(signal)
    panels = []
    for title, signals in by_title.items():
        targets = [
            prom(selected(s, s.levels[0] if s.levels else None, window, *_matchers(s)),
                 s.display.legend)
            for s in signals
        ]
        panels.append(panel(title, targets, unit=unit(signals[0]),
                            threshold=lowest(thresholds, signals)))
    return panels


def route_panels(thresholds: Thresholds, dashboard: str, window: str) -> list[dict[str, Any]]:
    """"<panel> by route" for each signal recorded per route (p50 left out: p95 and p99 tell
    the tail, which is where routes differ)."""
    panels = []
    for signal in CATALOGUE:
        level = next((lv for lv in signal.levels if lv.name == ROUTE_LEVEL), None)
        if signal.display.dashboard != dashboard or level is None or "p50" in signal.name:
            continue
        expr = selected(signal, level, window, SERVICE, 'route=~"$route"')
        panels.append(panel(f"{signal.title} by route", [prom(expr, "{{service}} {{route}}")],
                            unit=unit(signal), threshold=lowest(thresholds, [signal])))
    return panels
