"""Reading a log file's lines from the end, so a newest-first search stops early."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

_BLOCK = 64 * 1024


def lines_backwards(path: Path, block: int = _BLOCK) -> Iterator[str]:
    """The file's lines, last first, decoded as UTF-8 (bad bytes replaced), without newlines.

    Reads `block` bytes at a time from the end; a line longer than a block is joined whole.
    A last line still being written (no newline yet) is skipped: the writer appends whole lines.
    OSError propagates (the caller decides what an unreadable file means).
    """
    with open(path, "rb") as file:
        position = file.seek(0, os.SEEK_END)
        tail = b""
        first = True
        while position > 0:
            size = min(block, position)
            position -= size
            file.seek(position)
            chunk = file.read(size) + tail
            # A search runs in a worker thread, parsing without pause: the event loop, asking
            # for the GIL back after each select(), waited up to 5 ms a time for it, and a
            # /healthz or /metrics beside a 300,000-line search took 0.3-1.2 s. Handing the GIL
            # over once per block brought that to 25-35 ms, at no cost to the search.
            time.sleep(0)
            pieces = chunk.split(b"\n")
            tail = pieces[0]  # may continue in the block before
            for index in range(len(pieces) - 1, 0, -1):
                if first:
                    first = False
                    if index == len(pieces) - 1:  # after the last newline: torn or empty
                        continue
                yield pieces[index].decode("utf-8", "replace")
        if tail:
            if not first:
                yield tail.decode("utf-8", "replace")
