"""A bounded on-disk queue of ready-to-send Loki push bodies, replayed oldest first."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
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


class Spools:
    """This process's slot, plus one slot adopted from a process that is gone.

    New batches go to the own slot. `replay` sends the own slot oldest first; once it is empty,
    and unless `own_only`, it adopts a slot nobody holds (looking at most every `adopt_every`
    seconds) and sends that one oldest first too.
    """

    def __init__(
        self, root: Path, max_bytes: int, on_drop: Callable[[int], None] | None = None,
        adopt_every: float = 30.0,
    ) -> None:
        self.own = Spool(root, max_bytes, on_drop)
        self._on_drop = on_drop
        self._adopted: Spool | None = None
        self._adopt_every = adopt_every
        self._next_look = 0.0

    @property
    def directory(self) -> Path:
        """The own slot's directory."""
        return self.own.directory

    def __len__(self) -> int:
        """Batches in the own slot (new batches queue behind them)."""
        return len(self.own)

    @property
    def held_bytes(self) -> int:
        """Bytes in the slots held (own and adopted)."""
        adopted = self._adopted
        return self.own.bytes + (adopted.bytes if adopted is not None else 0)

    @property
    def held_batches(self) -> int:
        """Batches in the slots held (own and adopted)."""
        adopted = self._adopted
        return len(self.own) + (len(adopted) if adopted is not None else 0)

    def add(self, body: bytes, lines: int) -> bool:
        """Store a batch in the own slot (see `Spool.add`)."""
        return self.own.add(body, lines)

    def replay(
        self, send: Callable[[bytes, int], bool], may_send: Callable[[], bool],
        end: float | None, own_only: bool = False,
    ) -> None:
        """`send(body, lines)` each batch oldest first while `may_send()` and before `end`
        (monotonic); `send` returns False to stop (the batch stays for later)."""
        _replay(self.own, send, may_send, end)
        if len(self.own) or own_only:
            return
        adopted = self._adopted
        if adopted is None:
            now = time.monotonic()
            if now < self._next_look:
                return
            self._next_look = now + self._adopt_every
            adopted = self._adopted = Spool.adopt(
                self.own.root, self.own.max_bytes, self._on_drop, skip=self.own.directory
            )
            if adopted is None:
                return
        _replay(adopted, send, may_send, end)
        if not len(adopted):
            adopted.release()
            self._adopted = None
            self._next_look = 0.0  # another abandoned slot may be waiting

    def release(self) -> None:
        """Give up the slots held."""
        self.own.release()
        adopted, self._adopted = self._adopted, None
        if adopted is not None:
            adopted.release()


def _replay(
    spool: Spool, send: Callable[[bytes, int], bool], may_send: Callable[[], bool],
    end: float | None,
) -> None:
    while len(spool) and may_send():
        if end is not None and time.monotonic() >= end:
            return
        oldest = spool.oldest()
        if oldest is None:
            return
        if not send(*oldest):
            return
        spool.remove_oldest()
