"""Daily JSON log files, written by one background thread, safe with several processes (their
names and kinds are in layout.py)."""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from exporter.logs.appending import open_for_appending
from exporter.logs.layout import FILES, STDOUT, remove_expired
from exporter.worker import Worker

# One write() per file per drain keeps whole lines together; bound it so it stays a single write.
_LINGER_SECONDS = 0.05  # lines reach the files at most this much later
# ...or sooner, once this many items wait: an item (a line still to be made from its record,
# an access line's request) holds a few objects the cyclic GC tracks, and with hundreds of them
# waiting a busy process ran a generation-0 collection every ~60 requests, and a full one every
# ~10,000, although nothing was garbage.
_BATCH_ITEMS = 64
_MAX_WRITE = 1 << 20
_TARGETS: dict[int, tuple[int, ...]] = {}  # a line's kinds (a bit set) -> the kinds it goes to

Deferred = Callable[[Any], "list[tuple[int, str]]"]
# A line `(kinds, line)`, or `(render, payload)` to run on the writer thread; plain tuples both:
# the interpreter reuses freed tuples without counting them as new objects, so the items waiting
# here do not move the cyclic GC's count (see submit_deferred).
_Item = tuple[int, str] | tuple[Deferred, Any] | threading.Event | None


class DailyFiles(Worker):
    """Appends lines to `<log_dir>/<kind>_YYYY-MM-DD.log` (UTC dates) from a `Worker` thread
    (`exporter-log-files`), started at once; `stop()` writes what is queued first.

    `submit` never blocks: it puts the line on a bounded queue and counts a drop when the queue is
    full. Each file is opened with O_APPEND and every write() carries whole lines only, so several
    worker processes can share one directory without interleaving. Files are named by date, so
    nothing is ever renamed; files older than `retention_days` are deleted.

    Lines submitted with the `STDOUT` bit are also written to `echo` (stdout), one write and
    one flush per batch: a write and a flush per line cost more than formatting the line did.
    """

    def __init__(
        self,
        log_dir: Path,
        retention_days: int = 30,
        max_queue: int = 100_000,
        on_drop: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
        echo: TextIO | None = None,
    ) -> None:
        super().__init__("log-files")
        self.log_dir = Path(log_dir)
        self.echo = echo
        self.retention_days = retention_days
        # A deque, not a queue.Queue: append() takes no lock and wakes nobody, and the thread is
        # woken (an Event) only when it sleeps with nothing to do.
        self._queue: collections.deque[_Item] = collections.deque()
        self._max_queue = max_queue
        self._wake = threading.Event()
        self._idle = False
        self._lingering = False
        self._flushing = False  # someone waits in flush(): write without lingering
        # Lines that could not be written (a file that cannot be opened or written);
        # a caller of flush() compares it before and after to know its lines were written.
        self.write_failures = 0
        self._on_drop = on_drop
        self._clock = clock
        self._fds: dict[int, int] = {}
        # Called on the writer thread with each batch just written (the live tail); see `listen`.
        self._listeners: list[Callable[[dict[int, list[str]]], None]] = []
        self._day = ""
        (self.log_dir / "errors").mkdir(parents=True, exist_ok=True)
        self.start()

    @property
    def queued(self) -> int:
        """Lines (and deferred renders) waiting for the writer thread."""
        return len(self._queue)

    @property
    def capacity(self) -> int:
        """How many items the queue takes before a new one is dropped."""
        return self._max_queue

    def submit(self, kinds: int, line: str) -> bool:
        """Queue `line` (no newline) for the files in `kinds`; False when it was dropped."""
        return self._put((kinds, line))

    def submit_deferred(self, render: Deferred, payload: Any = None) -> bool:
        """Queue `render(payload)`, run on the writer thread; it returns `(kinds, line)` pairs.

        `render` should live long (a function, or a bound method kept in an attribute) and
        `payload` be a plain tuple of values: objects made for the item and freed by the writer
        thread, in bursts, made a busy app's cyclic GC run a collection every ~60 requests
        (nothing was garbage: frees past zero do not lower the interpreter's count).
        """
        return self._put((render, payload))

    def _put(self, item: _Item) -> bool:
        if len(self._queue) >= self._max_queue:
            self._dropped(1)
            return False
        self._queue.append(item)
        # Read after the append: the thread either sees the item or is woken.
        if self._idle or (self._lingering and len(self._queue) >= _BATCH_ITEMS):
            # Once: until the thread runs (it needs the GIL, which the caller holds for up to
            # the switch interval), every later item would set the Event again, a lock each.
            self._idle = self._lingering = False
            self._wake.set()
        return True

    def listen(self, listener: Callable[[dict[int, list[str]]], None]) -> None:
        """Call `listener({kind: lines})` on the writer thread after each batch is written.

        It must be quick and must not block: it runs between two writes.
        """
        self._listeners.append(listener)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (handed to the kernel with write(),
        which survives the process being killed, not a power loss); False on timeout, or when
        the writer has stopped with lines still queued (they will not be written)."""
        if self.stopped or not self.alive:
            return not self._queue
        done = threading.Event()
        self._queue.append(done)  # past the bound: a marker is not a line
        self._flushing = True
        self._wake.set()
        return done.wait(timeout)

    def _finish(self, timeout: float) -> None:
        # The thread writes what is queued, then closes the files.
        self._queue.append(None)  # behind every line queued so far
        self._wake.set()

    def _run(self) -> None:
        self._roll(self._today())
        pending: dict[int, list[str]] = {}
        running = True
        waiting = self._queue
        while running:
            if not waiting:
                self._idle = True  # set before looking again: see _put
                if not waiting:
                    self._wake.wait(1.0)
                self._wake.clear()
                self._idle = False
                continue
            first = waiting[0]
            if first is not None and not isinstance(first, threading.Event):  # a line
                # Let lines gather: at a few hundred lines a second, waking this thread (and
                # handing the GIL over) once per line cost more than writing the line did.
                self._lingering = True  # set before looking: see _put
                if len(waiting) < _BATCH_ITEMS and not self._flushing:
                    self._wake.wait(_LINGER_SECONDS)
                self._lingering = False
                self._flushing = False  # its marker is taken below (or in the next batch)
                self._wake.clear()
            items = [waiting.popleft()]
            while len(items) < 5000 and waiting:
                items.append(waiting.popleft())
            events: list[threading.Event] = []
            for item in items:
                if item is None:
                    running = False
                elif isinstance(item, threading.Event):
                    events.append(item)
                elif isinstance(item[0], int):
                    self._add(pending, item[0], item[1])
                else:
                    render, payload = item
                    try:
                        for kinds, line in render(payload):
                            self._add(pending, kinds, line)
                    except Exception:  # a broken renderer loses its own line, not the thread
                        self._dropped(1)
            self._write(pending)
            for listener in self._listeners:
                try:
                    listener(pending)
                except Exception:  # a broken listener loses its copy, never the files
                    pass
            pending.clear()
            for event in events:
                event.set()
        self._close_files()

    @staticmethod
    def _add(pending: dict[int, list[str]], kinds: int, line: str) -> None:
        targets = _TARGETS.get(kinds)
        if targets is None:
            targets = _TARGETS[kinds] = tuple(
                kind for kind in (*(kind for kind, _pattern, _name in FILES), STDOUT)
                if kinds & kind)
        for kind in targets:
            lines = pending.get(kind)
            if lines is None:
                pending[kind] = [line]
            else:
                lines.append(line)

    def _today(self) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self._clock()))

    def _write(self, pending: dict[int, list[str]]) -> None:
        day = self._today()
        if day != self._day:
            self._roll(day)
        for kind, lines in pending.items():
            if kind == STDOUT:
                self._echo(lines)
                continue
            fd = self._fd(kind)
            if fd is None:  # cannot be opened (permissions, no space, no descriptors left)
                self._failed(len(lines))
                continue
            # The usual batch: one join, one encode, one write. A large one (a 60 MB batch
            # through the API) goes by pieces: joined whole, it was held three times at once.
            if sum(map(len, lines)) + len(lines) <= _MAX_WRITE:  # characters: close enough
                self._write_all(fd, ("\n".join(lines) + "\n").encode("utf-8", "replace"))
                continue
            chunk: list[bytes] = []
            size = 0
            for line in lines:
                data = (line + "\n").encode("utf-8", "replace")
                if size + len(data) > _MAX_WRITE and chunk:
                    self._write_all(fd, b"".join(chunk))
                    chunk, size = [], 0
                chunk.append(data)
                size += len(data)
            if chunk:
                self._write_all(fd, b"".join(chunk))

    def _echo(self, lines: list[str]) -> None:
        stream = self.echo
        if stream is None:
            return
        try:
            for start in range(0, len(lines), 256):  # one join would copy a 60 MB batch whole
                stream.write("\n".join(lines[start:start + 256]) + "\n")
            stream.flush()
        except (OSError, ValueError):  # stdout closed or gone (a broken pipe): the files go on
            pass

    def _write_all(self, fd: int, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:  # a regular file takes it all at once; loop only on a short write
                view = view[os.write(fd, view):]
        except OSError:
            self._failed(data.count(b"\n"))

    def _failed(self, lines: int) -> None:
        self.write_failures += lines
        self._dropped(lines)

    def _dropped(self, lines: int) -> None:
        if self._on_drop is not None:
            self._on_drop(lines)

    def _fd(self, kind: int) -> int | None:
        fd = self._fds.get(kind)
        if fd is None:
            pattern = next(p for k, p, _n in FILES if k == kind)
            path = self.log_dir / pattern.format(day=self._day)
            fd = open_for_appending(path)
            if fd is None:
                return None
            self._fds[kind] = fd
        return fd

    def _roll(self, day: str) -> None:
        self._close_files()
        self._day = day
        self.remove_expired()

    def _close_files(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def remove_expired(self) -> list[Path]:
        """Delete dated files older than the retention; returns what was deleted."""
        return remove_expired(self.log_dir, self.retention_days, self._clock())

    def path(self, name: str, day: str | None = None) -> Path:
        """The file `name` ('app', 'error', 'errors', 'access', 'slow_requests') of `day`."""
        day = day or self._today()
        pattern = next(p for _k, p, n in FILES if n == name)
        return self.log_dir / pattern.format(day=day)
