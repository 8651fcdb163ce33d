"""`FileShipper`: ships the daily files (app_*, access_*) to Loki from positions kept on disk,
as Promtail does. The files are its write-ahead log: a line written to a file reaches Loki even
if the process is killed (`kill -9`, the OOM killer) before it was pushed."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.logs import layout
from exporter.logs.file_reader import DailyFileReader
from exporter.logs.line_fields import Hints, LineFields
from exporter.logs.loki_config import LokiConfig
from exporter.logs.positions import Position, Positions
from exporter.logs.push import encode_push
from exporter.logs.pushing import PushingWorker, log
from exporter.logs.streams import Entry, Streams

_POLL = 0.25  # seconds between looks at the files when no write of this process woke us
_LEAD_EVERY = 1.0  # seconds between tries to take over from the process that ships
_OBSERVE_EVERY = 1.0  # seconds between counts of the bytes behind (a stat of each file)
_ENTRY_OVERHEAD = 32  # bytes a line costs in the push body beyond its text


@dataclass
class _Batch:
    """Lines read past the acknowledged positions, and the positions once Loki has them."""

    started: float
    entries: list[Entry] = field(default_factory=list)
    lines: int = 0  # read, blank ones included
    size: int = 0
    ends: dict[str, Position] = field(default_factory=dict)
    body: bytes | None = None  # encoded once, the same bytes for every retry


class FileShipper(PushingWorker):
    """Reads the shipped daily files of `log_dir` forward and pushes them to Loki in batches
    (`batch_lines`, `batch_bytes` or `batch_wait`, whichever comes first), each line with its
    own `ts`. After each acknowledged push the positions are saved (fsync'd) to
    `positions_path`; a restart resumes from there, so a line is pushed at least once, and
    again only as the same entry (same labels, timestamp and line), which Loki drops.

    While Loki fails, the batch is retried with backoff and nothing more is read: the files
    hold the rest. Once the bytes behind pass `spool_max_bytes` during a failure, the oldest
    are skipped and counted (`spool_full`). Several processes may share the folder: the one
    holding the positions lock ships, the others try to take over every second.
    """

    def __init__(
        self, config: LokiConfig, log_dir: Path, positions_path: Path,
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__("loki", config, registry)
        self._reader = DailyFileReader(log_dir)
        self._positions = Positions(positions_path, log_dir)
        self._fields = LineFields(Streams(config))
        self._committed: dict[str, Position] = {}  # what Loki has acknowledged
        self._cursor: dict[str, Position] = {}  # what has been read (the batch included)
        self._batch: _Batch | None = None
        self._wake = threading.Event()
        self._behind = 0
        self._next_lead = 0.0
        self._next_observe = 0.0
        self._gave_up = False
        # While this process ships: the access lines its file writer wrote and this shipper has
        # not read yet, with their fields (`line_fields.Hint`); None while another one ships.
        self.hints: Hints | None = None
        self._unread = self._unread_bytes = 0  # written here since the last read (see wake)
        self.metrics.watch(self)
        # At once, not on the thread: a first start marks where the files end before this
        # process writes a line, so what it writes is shipped and what was there is not.
        self._lead()
        self.start()

    # ---- what the health and the metrics read -------------------------------------------
    @property
    def leading(self) -> bool:
        """True while this process is the one that ships the folder."""
        return self._positions.held

    @property
    def queue_lines(self) -> int:
        """Lines read from the files and waiting for Loki's answer."""
        batch = self._batch
        return len(batch.entries) if batch is not None else 0

    @property
    def queue_capacity(self) -> int:
        """Lines a batch holds at most."""
        return self.config.batch_lines

    @property
    def spool_bytes(self) -> int:
        """Bytes of the shipped files not yet acknowledged by Loki (0 unless leading)."""
        return self._behind if self.leading else 0

    @property
    def spool_batches(self) -> int:
        """Batches waiting to be pushed again after a failure (0 or 1)."""
        batch = self._batch
        return int(batch is not None and batch.body is not None and self._failures > 0)

    def spool_usage(self) -> tuple[int, int]:
        """(bytes behind, batches waiting for a retry)."""
        return self.spool_bytes, self.spool_batches

    def wake(self, written: dict[int, list[str]]) -> None:
        """A listener of the file writer (on its thread): it just wrote `written`. Wakes the
        thread when a batch should start, or once what was written would fill one (woken for
        every write, it read the files a few lines at a time, at a high cost per line)."""
        app, access = written.get(layout.APP), written.get(layout.ACCESS)
        if app is None and access is None:
            return
        for lines in (app, access):
            if lines:
                self._unread += len(lines)
                self._unread_bytes += sum(map(len, lines))  # characters: close enough
        if (self._batch is None or self._unread >= self.config.batch_lines
                or self._unread_bytes >= self.config.batch_bytes):
            self._wake.set()

    def close(self, timeout: float | None = None) -> None:
        """Push what the files hold within `timeout` (default: the close deadline); the rest
        waits in the files for the next start. Idempotent."""
        self.stop(timeout)

    # ---- the worker thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                if self._turn():
                    return
            except Exception as exc:  # nothing may end the worker: count, log, go on
                self._failed(exc)

    def _turn(self) -> bool:
        """One step; True once stopping and done (caught up, out of time, or Loki failing)."""
        self._wake.clear()  # before looking: a write from now on wakes the next wait
        now = time.monotonic()
        stopping = self._deadline is not None
        if not self._positions.held:
            if stopping:
                return True
            if now >= self._next_lead:
                self._next_lead = now + _LEAD_EVERY
                self._lead()
            if not self._positions.held:
                self._wake.wait(_LEAD_EVERY)
                return False
        files = self._reader.files()
        if now >= self._next_observe:
            self._next_observe = now + _OBSERVE_EVERY
            self._observe(files)
        self._behind = self._reader.behind(files, self._committed)
        batch = self._batch
        cfg = self.config
        if batch is None or (batch.body is None and not self._full(batch)):
            self._fill(files)
            batch = self._batch
        if batch is None:
            if stopping:
                return True
            self._wake.wait(_POLL)
            return False
        wait = batch.started + cfg.batch_wait - now
        if batch.body is None and not self._full(batch) and not stopping and wait > 0:
            self._wake.wait(wait)  # until the batch is due, or a write would fill it (`wake`)
            return False
        if not self._may_push():
            if stopping:
                return True
            self._wake.wait(max(0.001, self._next_attempt - now))
            return False
        self._send(batch)
        return stopping and self._gave_up

    def _full(self, batch: _Batch) -> bool:
        return batch.lines >= self.config.batch_lines or batch.size >= self.config.batch_bytes

    def _fill(self, files: list[tuple[str, os.stat_result]]) -> None:
        """Read what follows the batch (or the acknowledged positions) into the batch."""
        batch = self._batch
        self._unread = self._unread_bytes = 0  # before reading: later writes count for the next
        taken = (batch.lines, batch.size) if batch is not None else (0, 0)
        chunks = self._reader.read(files, self._cursor, self.config.batch_lines - taken[0],
                                   self.config.batch_bytes - taken[1])
        if not chunks:
            return
        if batch is None:
            batch = self._batch = _Batch(time.monotonic())
        now_ns = time.time_ns()
        for chunk in chunks:
            kind = "access" if chunk.name.startswith("access_") else "app"  # layout.SHIPPED
            batch.entries += self._fields.entries(chunk.data, now_ns, kind, self.hints)
            # The lines' bytes without their newlines, and what each costs in the push body.
            batch.size += len(chunk.data) - (chunk.count - 1) + _ENTRY_OVERHEAD * chunk.count
            batch.lines += chunk.count
            batch.ends[chunk.name] = chunk.end
            self._cursor[chunk.name] = chunk.end

    def _send(self, batch: _Batch) -> None:
        if batch.entries:
            if batch.body is None:
                batch.body = encode_push(batch.entries)
            result = self._push(batch.body, len(batch.entries))
            if result.outcome == "retry":
                self._gave_up = self._deadline is not None
                return
        self._batch = None  # pushed, or refused for good (counted): either way, past it
        self._commit(batch.ends)

    def _commit(self, ends: dict[str, Position]) -> None:
        self._committed.update(ends)
        self._positions.save(self._committed)

    def _observe(self, files: list[tuple[str, os.stat_result]]) -> None:
        """Forget the files that are gone (retention), and skip the oldest bytes past the
        bound while Loki fails."""
        names = {name for name, _stat in files}
        gone = [name for name in self._committed if name not in names]
        for name in gone:
            del self._committed[name]
            self._cursor.pop(name, None)
        behind = self._reader.behind(files, self._committed)
        excess = behind - self.config.spool_max_bytes
        if self._failures and excess > 0:
            self._skip(behind, excess)
        elif gone:
            self._positions.save(self._committed)

    def _skip(self, behind: int, excess: int) -> None:
        # The batch being retried holds the oldest lines: read again from the acknowledged
        # positions once they have moved past the skipped bytes.
        self._batch = None
        moved, skipped = self._reader.skip(self._committed, excess)
        self._cursor = dict(self._committed)
        self._commit(moved)
        self._cursor.update(moved)
        self.metrics.dropped("spool_full", skipped)
        log.warning("Loki has been failing and the daily files are %d bytes ahead of it, past "
                    "EXPORTER_LOKI_SPOOL_MAX_BYTES: skipped the oldest %d lines (they stay in "
                    "the files)", behind, skipped)

    def _lead(self) -> None:
        """Take the positions lock if free, and start from the saved positions."""
        try:
            if not self._positions.lead():
                return
            self.hints = {}
            state, saved = self._positions.load()
            if state == "found":
                saved = self._reader.checked(saved)
            elif state == "missing":  # a first start: what the files hold predates the shipper
                saved = self._reader.ends()
            elif state == "unreadable":
                log.warning("%s is unreadable or names another log folder: the daily files "
                            "are read again from their start (Loki drops the lines it already "
                            "has)", self._positions.path)
            self._committed, self._cursor = dict(saved), dict(saved)
            if state != "found":
                self._positions.save(self._committed)
        except OSError as exc:
            self.hints = None
            self._positions.release()
            self._note_failure(exc, 0)

    def _failed(self, exc: Exception) -> None:
        # An unforeseen error: the batch would fail again, so it is skipped and counted.
        batch, self._batch = self._batch, None
        lost = len(batch.entries) if batch is not None else 0
        if batch is not None:
            self._committed.update(batch.ends)
        self._cursor = dict(self._committed)
        self._note_failure(exc, lost)

    def _finish(self, timeout: float) -> None:
        self._deadline = time.monotonic() + timeout
        self._wake.set()

    def _after_stop(self) -> None:
        self._client.close()
        self.hints = None
        self._positions.release()
        self.metrics.unwatch(self)

    def _forget_parent(self) -> None:
        super()._forget_parent()
        self._positions.forget_after_fork()
        self.hints = None
        self._batch = None
        self._committed, self._cursor = {}, {}
        self._wake = threading.Event()
        self._deadline = None

