"""The daily files' layout: the kinds of line (a bit set), the file each kind goes to on a UTC
day, and the removal of files past the retention."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

# What a line is: a bit set, so one record can land in several files.
APP = 1
ERROR = 2
ERRORS = 4
ACCESS = 8
SLOW = 16
# Not a file: the line is echoed to the stream given as `echo` (stdout), in the same batches.
STDOUT = 32
FILES: tuple[tuple[int, str, str], ...] = (
    (APP, "app_{day}.log", "app"),
    (ERROR, "error_{day}.log", "error"),
    (ERRORS, "errors/errors_{day}.jsonl", "errors"),
    (ACCESS, "access_{day}.log", "access"),
    (SLOW, "slow_requests_{day}.log", "slow_requests"),
)
# What a shipper sends to Loki, as Promtail and Alloy do (promtail/, alloy/): app_* and access_*.
# error_* and slow_requests_* are subsets of them, and errors/ repeats error lines with stacks.
SHIPPED = re.compile(r"^(?:app|access)_(\d{4}-\d{2}-\d{2})\.log$")
DATED = re.compile(
    r"^(?:app|error|errors|access|slow_requests)_(\d{4}-\d{2}-\d{2})\.(?:log|jsonl)$"
)


def remove_expired(log_dir: Path, retention_days: int, now: float) -> list[Path]:
    """Delete the dated files in `log_dir` older than `retention_days` before `now`; returns what
    was deleted."""
    cutoff = time.strftime("%Y-%m-%d", time.gmtime(now - retention_days * 86400))
    removed: list[Path] = []
    for folder in (log_dir, log_dir / "errors"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            match = DATED.match(name)
            if match and match.group(1) < cutoff:
                with contextlib.suppress(OSError):  # another worker may have won the race
                    os.remove(folder / name)
                    removed.append(folder / name)
    return removed
