"""The file shipper's positions: how far each daily file has been acknowledged by Loki, kept in
one JSON file under the data folder and written durably, and the lock that makes one process
per positions file the one that reads and ships."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True, slots=True)
class Position:
    """Where shipping stands in one file: the file's identity (device, inode) and the byte
    offset of the first line not yet acknowledged."""

    device: int
    inode: int
    offset: int

    def of(self, stat: os.stat_result) -> bool:
        """True when `stat` is of the same file (a file deleted and made again is not)."""
        return stat.st_ino == self.inode and stat.st_dev == self.device


Loaded = Literal["found", "missing", "unreadable"]


def positions_path(data_dir: Path, log_dir: Path) -> Path:
    """`<data_dir>/loki-positions/<hash of the log folder's path>.json`: one file, and one lock,
    per log folder, so two apps sharing a data folder but not a log folder both ship theirs."""
    key = hashlib.sha256(str(Path(log_dir).resolve()).encode()).hexdigest()[:16]
    return Path(data_dir) / "loki-positions" / f"{key}.json"


class Positions:
    """`<path>` (JSON: the log folder and, per file name, device, inode and offset) and the
    `flock` on `<path>.lock` held by the one process that ships.

    `save` writes a temporary file, fsyncs it and renames it over the old one: after a crash,
    even a power loss, the file holds whole positions, the last saved or the ones before.
    """

    def __init__(self, path: Path, log_dir: Path) -> None:
        self.path = Path(path)
        self.log_dir = str(Path(log_dir).resolve())
        self._lock_fd: int | None = None
        if hasattr(os, "register_at_fork"):
            # A forked child (a Celery pool process, a pre-forked web worker) must not keep the
            # parent's lock: its copy of the descriptor shares the lock, which would outlive
            # the parent for as long as the child runs, and no restarted process could ship.
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _forget_in_child(ref))

    @property
    def held(self) -> bool:
        """True while this process holds the lock."""
        return self._lock_fd is not None

    def lead(self) -> bool:
        """Take the lock unless another process holds it; True when this process holds it.

        The kernel releases it when the holder dies, `kill -9` included."""
        if self._lock_fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)  # not across an exec either
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def release(self) -> None:
        """Give up the lock (another process may then ship)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def forget_after_fork(self) -> None:
        """In a forked child: the lock is the parent's (a child's copy of the descriptor shares
        it). Close the copy, which leaves the parent's lock in place (closing is no unlock:
        `flock(LOCK_UN)` would release the parent's lock). Runs at every fork."""
        self.release()

    def load(self) -> tuple[Loaded, dict[str, Position]]:
        """The saved positions by file name, and whether a file was `found`, `missing`, or
        `unreadable` (damaged, or of another log folder)."""
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return "missing", {}
        except (OSError, ValueError):
            return "unreadable", {}
        if not isinstance(doc, dict) or doc.get("log_dir") != self.log_dir:
            return "unreadable", {}
        found: dict[str, Position] = {}
        files = doc.get("files")
        for name, value in (files.items() if isinstance(files, dict) else ()):
            if (isinstance(value, list) and len(value) == 3
                    and all(isinstance(v, int) and v >= 0 for v in value)):
                found[name] = Position(*value)
        return "found", found

    def save(self, positions: dict[str, Position]) -> None:
        """Write `positions` durably (OSError propagates: the old file stays whole)."""
        doc = {"log_dir": self.log_dir,
               "files": {name: [p.device, p.inode, p.offset] for name, p in positions.items()}}
        data = json.dumps(doc, sort_keys=True).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        created = not self.path.exists()
        os.replace(tmp, self.path)
        # After a power loss a rename over the old file leaves the old one or the new one (a
        # copy pushed again at worst). A file made for the first time must survive, or the
        # next start would take the files as predating the shipper: fsync the folder then.
        if created:
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)


def _forget_in_child(ref: weakref.ref[Positions]) -> None:
    positions = ref()
    if positions is not None:
        positions.forget_after_fork()
