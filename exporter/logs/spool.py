"""A bounded on-disk queue of ready-to-send Loki push bodies, replayed oldest first."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path

_BATCH = re.compile(r"^(\d{12})-(\d+)\.gz$")
_MAX_SLOTS = 256


class SlotBusy(RuntimeError):
    """Another process holds the slot."""


class Spool:
    """Push bodies waiting for Loki, one file per batch, in `<root>/<slot>/`.

    Each process claims its own slot directory with an exclusive `flock`, so several workers can
    share `root` without sending a batch twice; a restarted process takes a free slot and replays
    what a previous process left there, and `adopt` hands an idle process the slots nobody holds
    (left by workers that are gone for good). When a new batch would push the total past
    `max_bytes`, the OLDEST batches are deleted first and their lines reported through `on_drop`.
    """

    def __init__(
        self, root: Path, max_bytes: int, on_drop: Callable[[int], None] | None = None,
        slot: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._on_drop = on_drop
        self._lock_fd: int | None = None
        self.directory = self._claim(slot)
        # (path, size, lines), oldest first
        self._batches: deque[tuple[Path, int, int]] = deque()
        self.bytes = 0
        self._next_seq = 0
        for name in sorted(os.listdir(self.directory)):
            match = _BATCH.match(name)
            if match is None:
                if name.endswith(".tmp"):  # a write cut short by a crash
                    with contextlib.suppress(OSError):
                        os.remove(self.directory / name)
                continue
            path = self.directory / name
            size = path.stat().st_size
            self._batches.append((path, size, int(match.group(2))))
            self.bytes += size
            self._next_seq = int(match.group(1)) + 1

    @classmethod
    def adopt(
        cls, root: Path, max_bytes: int, on_drop: Callable[[int], None] | None = None,
        skip: Path | None = None,
    ) -> Spool | None:
        """Claim another slot that holds batches and that no process holds; None if none does."""
        for slot, directory in _slots(Path(root)):
            if directory == skip or not _holds_batches(directory):
                continue
            try:
                return cls(root, max_bytes, on_drop, slot=slot)
            except SlotBusy:
                continue
        return None

    @staticmethod
    def usage(root: Path) -> tuple[int, int]:
        """(bytes, batches) waiting in every slot under `root`, held or not."""
        size = batches = 0
        for _slot, directory in _slots(Path(root)):
            for entry in _entries(directory):
                if _BATCH.match(entry.name):
                    with contextlib.suppress(OSError):
                        size += entry.stat().st_size
                        batches += 1
        return size, batches

    def _claim(self, only: int | None) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        for slot in range(_MAX_SLOTS) if only is None else (only,):
            directory = self.root / str(slot)
            directory.mkdir(exist_ok=True)
            fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self._lock_fd = fd
            return directory
        if only is not None:
            raise SlotBusy(f"spool slot {only} under {self.root} is in use")
        raise RuntimeError(f"all {_MAX_SLOTS} spool slots under {self.root} are in use")

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def lines(self) -> int:
        """Lines waiting in the spool."""
        return sum(lines for _p, _s, lines in self._batches)

    def add(self, body: bytes, lines: int) -> bool:
        """Store one gzipped push body of `lines` lines at the end; False when it was dropped."""
        if len(body) > self.max_bytes:
            self._dropped(lines)
            return False
        while self._batches and self.bytes + len(body) > self.max_bytes:
            path, size, old_lines = self._batches.popleft()
            with contextlib.suppress(OSError):
                os.remove(path)
            self.bytes -= size
            self._dropped(old_lines)
        path = self.directory / f"{self._next_seq:012d}-{lines}.gz"
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as file:
                file.write(body)
            os.replace(tmp, path)  # a crash leaves a .tmp, never a half batch under a real name
        except OSError:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            self._dropped(lines)
            return False
        self._next_seq += 1
        self._batches.append((path, len(body), lines))
        self.bytes += len(body)
        return True

    def oldest(self) -> tuple[bytes, int] | None:
        """The oldest body and its line count, or None when empty (unreadable files are dropped)."""
        while self._batches:
            path, _size, lines = self._batches[0]
            try:
                return path.read_bytes(), lines
            except OSError:
                self.remove_oldest()
                self._dropped(lines)
        return None

    def remove_oldest(self) -> None:
        """Forget the oldest batch (it was sent, or Loki refused it for good)."""
        if self._batches:
            path, size, _lines = self._batches.popleft()
            with contextlib.suppress(OSError):
                os.remove(path)
            self.bytes -= size

    def release(self) -> None:
        """Give up the slot so another process may take it."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def _dropped(self, lines: int) -> None:
        if self._on_drop is not None:
            self._on_drop(lines)


def _slots(root: Path) -> list[tuple[int, Path]]:
    return sorted(
        (int(entry.name), Path(entry.path)) for entry in _entries(root)
        if entry.name.isdigit() and entry.is_dir()
    )


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as found:
            return list(found)
    except OSError:
        return []


def _holds_batches(directory: Path) -> bool:
    return any(_BATCH.match(entry.name) for entry in _entries(directory))
