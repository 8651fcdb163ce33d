"""`AlertRule`: one alerting rule as the generators build it, before it is written out; and
how a threshold reads for people in its text."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.signals import Signal


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule; `signal` is None for the stack's own alerts (TargetDown...)."""

    name: str
    expr: str
    for_seconds: float
    severity: str
    summary: str
    description: str
    dashboard: str
    signal: Signal | None = None
    above: float | None = None


def threshold_text(signal: Signal, above: float) -> str:
    """A threshold for people: `80 %`, `500 ms`, `2 s`, `100/s`."""
    if signal.unit == "ratio":
        return f"{above * 100:g} %"
    if signal.unit == "seconds":
        return f"{above * 1000:g} ms" if above < 1 else f"{above:g} s"
    return f"{above:g}/s" if signal.unit == "per_second" else f"{above:g}"
