"""`PROMETHEUS_MULTIPROC_DIR`: the directory in which worker processes share their metric files.

prometheus-client reads the variable itself, when it is imported; the exporter reads and sets it
through these two functions only (see docs/multiprocess.md).
"""

from __future__ import annotations

import os

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_directory() -> str | None:
    """The directory of the workers' metric files, or None when the variable is unset or empty
    (one process: metrics stay in memory)."""
    return os.environ.get(MULTIPROC_ENV) or None


def set_multiprocess_directory(directory: str) -> None:
    """Make `directory` the workers' metric directory, for this process and those it starts."""
    os.environ[MULTIPROC_ENV] = directory


def clear_multiprocess_directory() -> None:
    """Forget the workers' metric directory (removed), for this process and those it starts: a
    worker restarted by SIGHUP execs itself with this environment."""
    os.environ.pop(MULTIPROC_ENV, None)
