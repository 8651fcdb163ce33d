"""The catalogue as Prometheus rules: recording rules per level, and the value an alert compares."""

from __future__ import annotations

from typing import Any

from exporter.signals.model import Catalogue, Signal
from exporter.signals.query import Level


class _Rules:
    """Collects recording rules in order, each name once."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}

    def record(self, name: str, expr: str) -> str:
        existing = self.rules.setdefault(name, expr)
        if existing != expr:
            raise ValueError(f"recording rule {name} is defined twice, differently")
        return name


def _named(name: str, expr: str) -> str:
    return name  # a rule sink that only names: the rules exist already


def value_at(signal: Signal, level: Level, window: str, sink: Any = _named) -> str:
    """The expression (usually a recording rule's name) holding `signal` at `level`."""
    expr: str = signal.query.rule_expr(level, window, sink)
    if signal.record:
        return str(sink(signal.record.format(level=level.name, window=window), expr))
    return expr


def alert_value(signal: Signal, window: str) -> str:
    """What an alert on `signal` compares with its threshold: the recorded value at the
    signal's first level, or the series themselves for a gauge."""
    if not signal.levels:
        return signal.query.promql(window)
    return value_at(signal, signal.levels[0], window)


def recording_groups(catalogue: Catalogue, window: str) -> list[dict[str, Any]]:
    """Every recording rule group: per group, level by level, each signal's rules in
    catalogue order (shared parts, such as a request rate, once)."""
    order: dict[str, list[Signal]] = {}
    for signal in catalogue:
        if signal.levels and signal.rule_group:
            order.setdefault(signal.rule_group, []).append(signal)
    groups = []
    for name, signals in order.items():
        rules = _Rules()
        levels = list(dict.fromkeys(level for signal in signals for level in signal.levels))
        for level in levels:
            for signal in signals:
                if level in signal.levels:
                    value_at(signal, level, window, rules.record)
        groups.append({"name": name, "rules": [
            {"record": record, "expr": expr} for record, expr in rules.rules.items()]})
    return groups
