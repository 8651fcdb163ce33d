"""Observability for FastAPI services: metrics, trace ids, logs, errors, health and alerts."""

from __future__ import annotations

from exporter._version import __version__
from exporter.app import create_app, instrument
from exporter.celery import instrument_celery
from exporter.config import Settings, SettingsError, load_settings
from exporter.errors.capture import capture_exception, enable_error_capture
from exporter.http.middleware import PrometheusMiddleware
from exporter.http.trace import current_span_id, current_trace, current_trace_id
from exporter.logs.loki import LokiShipper
from exporter.logs.setup import enable_access_log, setup_logging

__all__ = [
    "LokiShipper",
    "PrometheusMiddleware",
    "Settings",
    "SettingsError",
    "__version__",
    "capture_exception",
    "create_app",
    "current_span_id",
    "current_trace",
    "current_trace_id",
    "enable_access_log",
    "enable_error_capture",
    "instrument",
    "instrument_celery",
    "load_settings",
    "setup_logging",
]
