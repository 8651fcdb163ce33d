"""The signal catalogue: each signal defined once, read by every consumer.

Rules, promtool tests, dashboards, docs/signals.md, the in-process history and alerts, health
checks, status-page tiles and the observability API all take a signal's query, unit, subject
and display from its one entry in `CATALOGUE` (see `builtin.py`).
"""

from __future__ import annotations

from exporter.signals.builtin import BUILTIN, CELERY_RECORDING_GROUP, HTTP_RECORDING_GROUP
from exporter.signals.frames import Frame, Input, Labels, Reducer, Window
from exporter.signals.model import Catalogue, Display, Fixture, Signal, Unit
from exporter.signals.query import Gauge, Level, Metric, Quantile, Query, Rate, Ratio

CATALOGUE = Catalogue(BUILTIN)

__all__ = [
    "CATALOGUE",
    "CELERY_RECORDING_GROUP",
    "HTTP_RECORDING_GROUP",
    "Catalogue",
    "Display",
    "Fixture",
    "Frame",
    "Gauge",
    "Input",
    "Labels",
    "Level",
    "Metric",
    "Quantile",
    "Query",
    "Rate",
    "Ratio",
    "Reducer",
    "Signal",
    "Unit",
    "Window",
]
