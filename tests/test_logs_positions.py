"""The positions lock across a fork: a child (a Celery pool process, a pre-forked web worker)
never holds its parent's lock, so a process started after the parent can ship while the child
still runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from exporter.logs.positions import Positions

# The parent holds the lock and forks; the child writes its pid and whether it holds the lock,
# then runs on. The parent answers each line on stdin: release, lead again, exit (without
# releasing, as `kill -9` would leave it).
_HOLDER = """
import os, sys, time
from pathlib import Path
from exporter.logs.positions import Positions
positions = Positions(Path(sys.argv[1]), Path(sys.argv[2]))
assert positions.lead()
if os.fork() == 0:
    os.close(0), os.close(1)  # the test's pipes are the parent's
    with open(sys.argv[3] + ".tmp", "w") as out:
        out.write(f"{os.getpid()} {int(positions.held)}")
    os.rename(sys.argv[3] + ".tmp", sys.argv[3])
    time.sleep(120)
    os._exit(0)
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
print("ready", positions.held, flush=True)
sys.stdin.readline()
positions.release()
print("released", positions.held, flush=True)
sys.stdin.readline()
print("again", positions.lead(), flush=True)
sys.stdin.readline()
os._exit(0)
"""


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_forked_child_never_holds_the_parents_lock(tmp_path: Path) -> None:
    path, log_dir, report = tmp_path / "data" / "p.json", tmp_path / "logs", tmp_path / "child"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), str(log_dir), str(report)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    child = 0
    other = Positions(path, log_dir)
    try:
        assert holder.stdout.readline().split() == ["ready", "True"]
        pid, child_held = report.read_text().split()
        child = int(pid)
        assert child_held == "0"
        assert not other.lead()  # the parent holds it

        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().split() == ["released", "False"]
        assert other.lead()  # the child's copy of the descriptor held nothing
        other.release()

        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().split() == ["again", "True"]
        assert not other.lead()

        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
        assert _running(child)
        # The parent is gone, the child runs on: a new process takes the lock.
        assert other.lead()
    finally:
        other.release()
        if child:
            os.kill(child, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _running(child) and time.monotonic() < deadline:
                time.sleep(0.05)
        if holder.poll() is None:
            holder.kill()
        holder.communicate(timeout=30)  # waits, and closes the pipes
