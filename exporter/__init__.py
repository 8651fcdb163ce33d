"""Observability for FastAPI services: metrics, trace ids, logs, errors, health and alerts."""

from __future__ import annotations

__version__ = "0.1.0"

from exporter.app import create_app, instrument
from exporter.config import Settings, SettingsError, load_settings
from exporter.middleware import PrometheusMiddleware
from exporter.trace import current_span_id, current_trace, current_trace_id

__all__ = [
    "PrometheusMiddleware",
    "Settings",
    "SettingsError",
    "__version__",
    "create_app",
    "current_span_id",
    "current_trace",
    "current_trace_id",
    "instrument",
    "load_settings",
]
