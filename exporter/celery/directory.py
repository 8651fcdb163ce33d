"""The worker's metrics directory: the user's `PROMETHEUS_MULTIPROC_DIR`, or one it makes.

A directory the worker makes is marked (`exporter.metric_files.MARKER`) and removed when the
worker stops; the variable that names it is cleared then, so a worker restarted by SIGHUP, which
execs itself with its environment, makes a new one instead of taking the old name for the
user's. Directories of earlier workers that were killed outright are removed when the next
worker makes its own. In the user's directory, the files an earlier worker left behind (a
crash, `kill -9`) are removed before this worker writes, with a warning naming the directory.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from typing import NamedTuple

from prometheus_client import values

from exporter.config import (
    MULTIPROC_ENV,
    clear_multiprocess_directory,
    multiprocess_directory,
    set_multiprocess_directory,
)
from exporter.metric_files import (
    make_temporary_directory,
    pid_alive,
    remove_directory,
    remove_leftovers,
    temporary_owner,
)

log = logging.getLogger("exporter.celery")
PREFIX = "exporter-celery-metrics-"


class MetricsDirectory(NamedTuple):
    """Where the worker's processes write their metric files."""

    path: str
    made: bool  # made by this worker: removed when it stops


def enable_multiprocess() -> MetricsDirectory:
    """The multiprocess directory, made (and exported to the pool processes) unless the user
    set one; cleared of an earlier run's files. Call before any `celery_*` metric exists.

    prometheus-client chooses file-backed values from the environment when it is imported; the
    worker decides later, so the value class is chosen again here. Metrics created earlier in
    this process stay in memory and are not served.
    """
    directory = multiprocess_directory()
    if directory is not None:
        owner = temporary_owner(directory)
        if owner is not None:
            # Made by the kit for an earlier worker whose environment this one inherited. Its
            # maker may still run (then it is its own), else it is a leftover.
            if owner == os.getpid() or not pid_alive(owner):
                remove_directory(directory)
            directory = None
    made = directory is None
    if directory is None:
        _remove_abandoned()
        directory = make_temporary_directory(PREFIX)
        set_multiprocess_directory(directory)
    else:
        os.makedirs(directory, exist_ok=True)
        _report_leftovers(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return MetricsDirectory(directory, made)


def _remove_abandoned() -> None:
    """Remove the directories earlier workers made here and could not remove (`kill -9`)."""
    me = os.getpid()
    for directory in glob.glob(os.path.join(tempfile.gettempdir(), PREFIX + "*")):
        owner = temporary_owner(directory)
        if owner is not None and (owner == me or not pid_alive(owner)):
            remove_directory(directory)
            log.info("celery metrics: removed %s, left by a worker that no longer runs",
                     directory)


def _report_leftovers(directory: str) -> None:
    found = remove_leftovers(directory)
    if found.removed:
        log.warning(
            "celery metrics: %s=%s held the files of %d process(es) that no longer run (pids "
            "%s: an earlier worker that did not stop cleanly); removed, so their numbers are "
            "not added to this worker's", MULTIPROC_ENV, directory, len(found.removed),
            ", ".join(map(str, found.removed[:10])))
    if found.running:
        log.warning(
            "celery metrics: %s=%s also holds the files of running process(es) %s: their "
            "numbers are added to this worker's; give each worker a directory of its own",
            MULTIPROC_ENV, directory, ", ".join(map(str, found.running[:10])))


def release(directory: MetricsDirectory) -> None:
    """The worker stops: remove the directory it made, and forget its name (idempotent)."""
    if directory.made:
        remove_directory(directory.path)
        if multiprocess_directory() == directory.path:
            clear_multiprocess_directory()
