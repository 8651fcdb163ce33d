"""Daily files: names by date, what goes where, retention, several processes in one folder."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from exporter.logs import layout
from exporter.logs.files import DailyFiles

REPO = Path(__file__).resolve().parent.parent
DAY = 86400.0


def test_lines_go_to_the_files_their_kinds_name(tmp_path: Path) -> None:
    daily = DailyFiles(tmp_path)
    daily.submit(layout.APP, '{"n":1}')
    daily.submit(layout.APP | layout.ERROR | layout.ERRORS, '{"n":2}')
    daily.submit(layout.ACCESS | layout.SLOW, '{"n":3}')
    assert daily.flush()
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert (tmp_path / f"app_{day}.log").read_text() == '{"n":1}\n{"n":2}\n'
    assert (tmp_path / f"error_{day}.log").read_text() == '{"n":2}\n'
    assert (tmp_path / "errors" / f"errors_{day}.jsonl").read_text() == '{"n":2}\n'
    assert (tmp_path / f"access_{day}.log").read_text() == '{"n":3}\n'
    assert (tmp_path / f"slow_requests_{day}.log").read_text() == '{"n":3}\n'
    daily.stop()


def test_a_new_day_opens_a_new_file(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    daily = DailyFiles(tmp_path, clock=lambda: now[0])
    daily.submit(layout.APP, "first")
    assert daily.flush()
    now[0] += DAY
    daily.submit(layout.APP, "second")
    daily.stop()
    assert (tmp_path / "app_2023-11-14.log").read_text() == "first\n"
    assert (tmp_path / "app_2023-11-15.log").read_text() == "second\n"


def test_files_past_the_retention_are_deleted(tmp_path: Path) -> None:
    (tmp_path / "errors").mkdir()
    old = ["app_2023-10-01.log", "access_2023-10-01.log", "errors/errors_2023-10-01.jsonl"]
    kept = ["app_2023-11-01.log", "notes.txt"]
    for name in old + kept:
        (tmp_path / name).write_text("x\n")
    daily = DailyFiles(tmp_path, retention_days=30, clock=lambda: 1_700_000_000.0)
    daily.flush()
    daily.stop()
    for name in old:
        assert not (tmp_path / name).exists(), name
    for name in kept:
        assert (tmp_path / name).exists(), name


def test_a_full_queue_counts_drops_instead_of_blocking(tmp_path: Path) -> None:
    drops: list[int] = []
    daily = DailyFiles(tmp_path, max_queue=1, on_drop=drops.append)
    daily.stop()  # the writer is gone: the queue fills at once
    for _ in range(3):
        daily.submit(layout.APP, "x")
    assert sum(drops) >= 2


def test_several_processes_append_whole_lines_to_the_same_files(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from exporter.logs import layout
        from exporter.logs.files import DailyFiles
        daily = DailyFiles(Path(sys.argv[1]))
        pad = "x" * 300
        for n in range(3000):
            daily.submit(layout.APP, json.dumps({"proc": sys.argv[2], "n": n, "pad": pad}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(p)], cwd=REPO)
             for p in range(3)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    (app_file,) = tmp_path.glob("app_*.log")
    lines = app_file.read_text().splitlines()
    assert len(lines) == 9000
    seen: dict[str, list[int]] = {}
    for line in lines:
        doc = json.loads(line)  # an interleaved write would break a line here
        seen.setdefault(doc["proc"], []).append(doc["n"])
    assert all(numbers == list(range(3000)) for numbers in seen.values())


def test_lines_a_file_cannot_take_and_broken_renderers_are_counted_as_drops(
    tmp_path: Path,
) -> None:
    drops: list[int] = []
    day = time.strftime("%Y-%m-%d", time.gmtime())
    (tmp_path / f"access_{day}.log").mkdir()  # the file cannot be opened
    daily = DailyFiles(tmp_path, on_drop=drops.append)
    daily.submit(layout.ACCESS, '{"m":"lost"}')
    daily.submit(layout.APP, '{"m":"kept"}')

    def broken(payload: object) -> list[tuple[int, str]]:
        raise ZeroDivisionError

    daily.submit_deferred(broken, ())
    assert daily.flush()
    daily.stop()
    assert sum(drops) == 2
    assert (tmp_path / f"app_{day}.log").read_text() == '{"m":"kept"}\n'
