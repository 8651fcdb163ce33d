"""The package's version: `exporter.__version__`, `exporter version`, the default release."""

from __future__ import annotations

__version__ = "0.1.0"
