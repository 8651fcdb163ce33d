"""The processes' files in `PROMETHEUS_MULTIPROC_DIR`: whose they are, which outlived them.

prometheus-client names each file after the process that writes it (`counter_<pid>.db`,
`gauge_livesum_<pid>.db`, ...) and adds up whatever files it finds. A process that dies
without `mark_process_dead` (`kill -9`, the OOM killer) leaves its live gauges in the sum, and
a directory left over from a crash carries the old processes' numbers into the next run. The
pids are those of one host (one pid namespace): a directory is never shared across machines or
containers.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile

from prometheus_client.multiprocess import mark_process_dead

# A directory the kit made (and removes when the process that made it stops) holds this file,
# with that process's pid: a process that inherits the directory's name through its
# environment (a worker restarted by SIGHUP execs itself) does not take it for the user's.
MARKER = "exporter-temporary-directory"
_PID = re.compile(r"_(\d+)\.db\Z")
_LIVE = "gauge_live"


def make_temporary_directory(prefix: str) -> str:
    """A new directory, marked as made by this process."""
    directory = tempfile.mkdtemp(prefix=prefix)
    with open(os.path.join(directory, MARKER), "w") as marker:
        marker.write(str(os.getpid()))
    return directory


def temporary_owner(directory: str) -> int | None:
    """The pid of the process that made `directory`, or None when the kit did not make it."""
    try:
        with open(os.path.join(directory, MARKER)) as marker:
            text = marker.read(32).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else 0


def remove_directory(directory: str) -> None:
    """Remove a directory the kit made, if it still exists."""
    shutil.rmtree(directory, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """True while process `pid` runs (a zombie, which can never write again, is not alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            stat = stat_file.read()
    except OSError:  # no procfs: the signal's answer stands
        return True
    # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ')'.
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def files_by_pid(directory: str) -> dict[int, list[str]]:
    """The `.db` files of `directory`, by the pid in their names."""
    found: dict[int, list[str]] = {}
    for path in glob.glob(os.path.join(directory, "*.db")):
        match = _PID.search(path)
        if match is not None:
            found.setdefault(int(match.group(1)), []).append(path)
    return found


def forget_dead_processes(directory: str) -> list[int]:
    """Remove the live gauges (`livesum`, `liveall`, ...) of processes that no longer run, as
    `mark_process_dead` would have done had they exited cleanly; their counters and histograms
    stay in the sum. Returns the pids forgotten."""
    dead = []
    for pid, paths in files_by_pid(directory).items():
        if any(os.path.basename(p).startswith(_LIVE) for p in paths) and not pid_alive(pid):
            try:
                mark_process_dead(pid, path=directory)  # type: ignore[no-untyped-call]
            except OSError:  # removed meanwhile by another reader
                pass
            dead.append(pid)
    return dead


class Leftovers:
    """What `remove_leftovers` found: the processes whose files it removed, and the running
    ones (other than this process) whose files it kept."""

    def __init__(self, removed: list[int], running: list[int]) -> None:
        self.removed = removed
        self.running = running


def remove_leftovers(directory: str) -> Leftovers:
    """Before this process writes any metric: remove every file of a process that no longer runs
    and of this very pid (an earlier process that had it: a restart by exec keeps the pid, a
    container's pids repeat), so no number of an earlier run is carried into this one."""
    removed, running = [], []
    me = os.getpid()
    for pid, paths in sorted(files_by_pid(directory).items()):
        if pid != me and pid_alive(pid):
            running.append(pid)
            continue
        for path in paths:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        removed.append(pid)
    return Leftovers(removed, running)
