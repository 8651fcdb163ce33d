"""Reading the shipped daily files (app_*, access_*) forward from positions: whole lines only,
oldest file first, with a file replaced or truncated read again from its start."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from exporter.logs.layout import SHIPPED
from exporter.logs.positions import Position

_BLOCK = 1 << 20


@dataclass(slots=True)
class Chunk:
    """Whole lines read from one file (`count` of them in `data`, newline-separated, without
    the last newline), and the position just past them."""

    name: str
    end: Position
    data: bytes
    count: int


def start_of(position: Position | None, stat: os.stat_result) -> int:
    """Where to read a file from: its position, or 0 for a file never seen, a file made again
    under the same name (another inode) or a file truncated below its position."""
    if position is None or not position.of(stat) or stat.st_size < position.offset:
        return 0
    return position.offset


class DailyFileReader:
    """The shipped daily files of `log_dir`, read from positions the caller keeps."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)

    def files(self) -> list[tuple[str, os.stat_result]]:
        """(name, stat) of each shipped file, oldest day first (app before access)."""
        try:
            names = os.listdir(self.log_dir)
        except OSError:
            return []
        found: list[tuple[str, str, os.stat_result]] = []
        for name in names:
            match = SHIPPED.match(name)
            if match is None:
                continue
            try:
                found.append((match.group(1), name, os.stat(self.log_dir / name)))
            except OSError:  # deleted meanwhile (retention)
                continue
        found.sort(key=lambda item: (item[0], item[1]))
        return [(name, stat) for _day, name, stat in found]

    def ends(self) -> dict[str, Position]:
        """Each shipped file's end, at a line's start: where a first start begins."""
        ends: dict[str, Position] = {}
        for name, stat in self.files():
            offset = self._line_start(name, stat.st_size)
            ends[name] = Position(stat.st_dev, stat.st_ino, offset)
        return ends

    def checked(self, positions: dict[str, Position]) -> dict[str, Position]:
        """`positions` of the files there now; a file made again, or shorter than its position
        (truncated, or its end lost with a power loss, the positions being fsync'd and the
        files not), from its start: checked before anything is appended past the old end."""
        return {name: Position(stat.st_dev, stat.st_ino, start_of(positions[name], stat))
                for name, stat in self.files() if name in positions}

    @staticmethod
    def behind(files: list[tuple[str, os.stat_result]], positions: dict[str, Position]) -> int:
        """Bytes of `files` (from `files()`) past `positions`."""
        return sum(stat.st_size - start_of(positions.get(name), stat) for name, stat in files)

    def read(
        self, files: list[tuple[str, os.stat_result]], positions: dict[str, Position],
        max_lines: int, max_bytes: int,
    ) -> list[Chunk]:
        """Whole lines of `files` (from `files()`) past `positions`, oldest file first, at most
        `max_lines` lines and about `max_bytes` bytes (a single longer line is read whole). A
        last line without its newline yet is left for later."""
        chunks: list[Chunk] = []
        for name, stat in files:
            if max_lines <= 0 or max_bytes <= 0:
                break
            start = start_of(positions.get(name), stat)
            if stat.st_size <= start:
                continue
            chunk = self._read_file(name, positions.get(name), max_lines, max_bytes)
            if chunk is not None:
                chunks.append(chunk)
                max_lines -= chunk.count
                max_bytes -= len(chunk.data) + 1
        return chunks

    def _read_file(
        self, name: str, position: Position | None, max_lines: int, max_bytes: int
    ) -> Chunk | None:
        try:
            with open(self.log_dir / name, "rb") as file:
                stat = os.fstat(file.fileno())  # the file read, whatever the name now points to
                start = start_of(position, stat)
                file.seek(start)
                data = file.read(max_bytes)
                cut = data.rfind(b"\n")
                while cut < 0:  # one line longer than the budget: read it whole, or wait for it
                    more = file.read(_BLOCK)
                    if not more:
                        return None
                    data += more
                    cut = data.find(b"\n")
        except OSError:
            return None
        data = data[:cut]
        count = data.count(b"\n") + 1
        if count > max_lines:
            rest = data.split(b"\n", max_lines)[-1]
            data, count = data[:len(data) - len(rest) - 1], max_lines
        return Chunk(name, Position(stat.st_dev, stat.st_ino, start + len(data) + 1), data, count)

    def skip(self, positions: dict[str, Position], excess: int) -> tuple[dict[str, Position], int]:
        """Positions moved past the oldest `excess` bytes (to a line's start), and the number of
        lines skipped."""
        moved: dict[str, Position] = {}
        skipped = 0
        for name, stat in self.files():
            if excess <= 0:
                break
            start = start_of(positions.get(name), stat)
            if stat.st_size <= start:
                continue
            end = self._line_start(name, min(stat.st_size, start + excess))
            skipped += self._count_lines(name, start, end)
            moved[name] = Position(stat.st_dev, stat.st_ino, end)
            excess -= end - start
        return moved, skipped

    def _line_start(self, name: str, offset: int) -> int:
        """`offset`, or the start of the next line when `offset` falls inside one (the end of
        the file when that line has no newline yet)."""
        if offset == 0:
            return 0
        try:
            with open(self.log_dir / name, "rb") as file:
                position = file.seek(offset - 1)
                while True:
                    block = file.read(_BLOCK)
                    if not block:
                        return position
                    found = block.find(b"\n")
                    if found >= 0:
                        return position + found + 1
                    position += len(block)
        except OSError:
            return offset

    def _count_lines(self, name: str, start: int, end: int) -> int:
        count = 0
        try:
            with open(self.log_dir / name, "rb") as file:
                file.seek(start)
                left = end - start
                while left > 0:
                    block = file.read(min(_BLOCK, left))
                    if not block:
                        break
                    count += block.count(b"\n")
                    left -= len(block)
        except OSError:
            pass
        return count
