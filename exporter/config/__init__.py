"""The configuration: one `Settings` object from `EXPORTER_*` variables, and what it parses.

A leaf: nothing here imports the rest of the package, which reads its settings from here.
"""

from __future__ import annotations

from exporter.config.defaults import DEFAULT_BUCKETS, DEFAULT_REDACT_KEYS, MAX_SAMPLES, ring_length
from exporter.config.loading import SettingsError, env_name, load_settings, unknown_variables
from exporter.config.multiprocess import (
    MULTIPROC_ENV,
    clear_multiprocess_directory,
    multiprocess_directory,
    set_multiprocess_directory,
)
from exporter.config.settings import ENV_PREFIX, Settings

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_REDACT_KEYS",
    "ENV_PREFIX",
    "MAX_SAMPLES",
    "MULTIPROC_ENV",
    "Settings",
    "SettingsError",
    "clear_multiprocess_directory",
    "env_name",
    "load_settings",
    "multiprocess_directory",
    "ring_length",
    "set_multiprocess_directory",
    "unknown_variables",
]
