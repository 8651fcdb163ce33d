"""Expand the few Go-template forms our annotations use, as Prometheus would (for promtool tests).

Only `{{ $labels.NAME }}` and `{{ $value | humanize* }}` appear in generated annotations; the
humanize functions follow Prometheus' template package (4 significant digits, SI prefixes).
"""

from __future__ import annotations

import math
import re

_LABEL = re.compile(r"\{\{ \$labels\.(\w+) \}\}")
_VALUE = re.compile(r"\{\{ \$value \| (humanize|humanizePercentage|humanizeDuration) \}\}")


def _g(value: float) -> str:
    return f"{value:.4g}"


def _small(value: float, unit: str) -> str:
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{_g(value)}{prefix}{unit}"


def humanize(value: float) -> str:
    """Prometheus' `humanize`: 1234 -> 1.234k, 0.25 -> 250m."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _g(value)
    if abs(value) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix, value = p, value / 1000
        return f"{_g(value)}{prefix}"
    return _small(value, "")


def humanize_duration(value: float) -> str:
    """Prometheus' `humanizeDuration` for values under a minute: 0.525 -> 525ms, 2.5 -> 2.5s."""
    if math.isnan(value) or math.isinf(value):
        return _g(value)
    if value == 0:
        return f"{_g(value)}s"
    if abs(value) >= 60:
        raise ValueError("durations of a minute or more are not generated in tests")
    return f"{_g(value)}s" if abs(value) >= 1 else _small(value, "s")


_FUNCTIONS = {
    "humanize": humanize,
    "humanizePercentage": lambda v: f"{_g(v * 100)}%",
    "humanizeDuration": humanize_duration,
}


def expand(template: str, labels: dict[str, str], value: float) -> str:
    """`template` with its labels and value filled in."""
    text = _LABEL.sub(lambda m: labels.get(m.group(1), ""), template)
    return _VALUE.sub(lambda m: _FUNCTIONS[m.group(1)](value), text)
