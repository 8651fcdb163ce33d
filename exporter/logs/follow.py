"""Follow the daily log files, as `tail -F` does, and hand new lines to the live tail.

The live tail of the status page shows what the watched app logs. When that app is this process,
its file writer hands the tail each batch it writes. Otherwise (another worker of the same app,
or apps the sidecar watches, all writing to EXPORTER_LOG_DIR) the lines are read back from the
files: every quarter second, whatever was appended since, complete lines only, from the end of
each file as it was when following started; a new day's file is picked up at midnight (UTC).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from exporter.logs.layout import ACCESS, APP, ERROR, FILES, SLOW
from exporter.worker import PeriodicWorker

log = logging.getLogger("exporter.logs")
FOLLOWED = (APP, ERROR, ACCESS, SLOW)  # the streams the tail offers
_MAX_READ = 1 << 20  # per file and turn: a burst is read over several turns, never all at once


class LogFollower(PeriodicWorker):
    """Reads what was appended to today's files and calls `publish({kind: lines})`."""

    def __init__(self, log_dir: Path, publish: Callable[[dict[int, list[str]]], None],
                 interval: float = 0.25) -> None:
        super().__init__("log-follower", interval, log=log, failure="following the log files "
                         "failed", quiet=60.0)
        self._dir = log_dir
        self._publish = publish
        self._names = {kind: name for kind, name, _ in FILES if kind in FOLLOWED}
        self._offsets: dict[Path, int] = {}
        self._started = False

    def _path(self, kind: int) -> Path:
        return self._dir / self._names[kind].format(day=time.strftime("%Y-%m-%d", time.gmtime()))

    def run_once(self) -> None:
        fresh = not self._started
        self._started = True
        batch: dict[int, list[str]] = {}
        for kind in FOLLOWED:
            path = self._path(kind)
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            if path not in self._offsets:
                # What was there before following started is history, not live (a new day's
                # file found later is read from its start).
                self._offsets[path] = size if fresh else 0
            offset = self._offsets[path]
            if size < offset:  # truncated or replaced: start again
                offset = 0
            if size == offset:
                continue
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read(min(size - offset, _MAX_READ))
            end = data.rfind(b"\n") + 1  # complete lines only: the rest waits for its newline
            self._offsets[path] = offset + end
            lines = data[:end].decode("utf-8", "replace").splitlines()
            if lines:
                batch[kind] = lines
        # Yesterday's files are done with once today's exist.
        today = {self._path(kind) for kind in FOLLOWED}
        self._offsets = {p: o for p, o in self._offsets.items() if p in today}
        if batch:
            self._publish(batch)
