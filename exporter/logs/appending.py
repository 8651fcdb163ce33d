"""Opening a daily log file for appending, with several processes writing to it."""

from __future__ import annotations

import os
from pathlib import Path


def open_for_appending(path: Path) -> int | None:
    """A descriptor appending to `path` (made with its folder if need be), its last line ended;
    None when it cannot be opened."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        return None
    _end_torn_line(fd)
    return fd


def _end_torn_line(fd: int) -> None:
    """End the file's last line if it has no newline: a process killed in the middle of a
    write() (SIGKILL stops a write between two pages) leaves part of a line, which would
    otherwise swallow the first line written after it. If another process is writing just
    then, this only adds an empty line after its own."""
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")
    except OSError:
        pass
