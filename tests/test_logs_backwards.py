"""Reading a log file from its end: every whole line, last first, across block boundaries."""

from __future__ import annotations

from pathlib import Path

from exporter.logs.backwards import lines_backwards


def test_lines_come_last_first_across_blocks_and_a_torn_last_line_is_skipped(
    tmp_path: Path,
) -> None:
    lines = [f"line {n} " + "x" * (n * 7 % 50) for n in range(200)] + ["y" * 300, "", "é"]
    path = tmp_path / "app.log"
    path.write_bytes(("\n".join(lines) + "\n" + '{"torn').encode())
    assert list(lines_backwards(path, block=64)) == list(reversed(lines))


def test_a_file_without_a_newline_or_empty_has_no_line(tmp_path: Path) -> None:
    (tmp_path / "torn.log").write_text('{"ts": ')
    (tmp_path / "empty.log").write_text("")
    assert list(lines_backwards(tmp_path / "torn.log")) == []
    assert list(lines_backwards(tmp_path / "empty.log")) == []


def test_bad_bytes_are_replaced(tmp_path: Path) -> None:
    (tmp_path / "bad.log").write_bytes(b"ok\n\xff\xfe\n")
    assert list(lines_backwards(tmp_path / "bad.log", block=1)) == ["\ufffd\ufffd", "ok"]
