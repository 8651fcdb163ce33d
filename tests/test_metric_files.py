"""The processes' files in a multiprocess directory: live gauges of dead processes, leftovers
of an earlier run, directories the kit made."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, values
from prometheus_client.multiprocess import MultiProcessCollector

from exporter.metric_files import (
    forget_dead_processes,
    make_temporary_directory,
    pid_alive,
    remove_leftovers,
    temporary_owner,
)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def zombie() -> Iterator[int]:
    """A child that has exited and is not yet reaped."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.close(read)
    os.close(write)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited; still a zombie
    yield pid
    os.waitpid(pid, 0)


def _write_as(directory: Path, pid: int, in_progress: float, total: float) -> None:
    """Write the files process `pid` would have written."""
    value_class = values.MultiProcessValue(lambda: pid)  # type: ignore[no-untyped-call]
    old, values.ValueClass = values.ValueClass, value_class
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    try:
        registry = CollectorRegistry()
        Gauge("tasks_in_progress", "h", multiprocess_mode="livesum",
              registry=registry).set(in_progress)
        Counter("tasks", "h", registry=registry).inc(total)
    finally:
        values.ValueClass = old
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _sum(directory: Path) -> dict[str, float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return {s.name: s.value for m in registry.collect() for s in m.samples}


def test_running_exited_and_zombie_processes(zombie: int) -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())
    assert not pid_alive(zombie)
    assert not pid_alive(0)


def test_the_live_gauges_of_dead_processes_leave_the_sum_their_counters_stay(
    tmp_path: Path, zombie: int,
) -> None:
    dead = _dead_pid()
    _write_as(tmp_path, os.getpid(), 1, 10)
    _write_as(tmp_path, dead, 1, 5)
    _write_as(tmp_path, zombie, 1, 2)
    assert _sum(tmp_path) == {"tasks_in_progress": 3, "tasks_total": 17}
    assert sorted(forget_dead_processes(str(tmp_path))) == sorted([dead, zombie])
    assert _sum(tmp_path) == {"tasks_in_progress": 1, "tasks_total": 17}
    assert forget_dead_processes(str(tmp_path)) == []


def test_leftovers_of_dead_processes_and_of_this_pid_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (dead, os.getpid(), other.pid):
            _write_as(tmp_path, pid, 1, 1)
        found = remove_leftovers(str(tmp_path))
        assert sorted(found.removed) == sorted([dead, os.getpid()])
        assert found.running == [other.pid]
        assert _sum(tmp_path) == {"tasks_in_progress": 1, "tasks_total": 1}
    finally:
        other.kill()
        other.wait()


def test_a_directory_the_kit_made_is_marked_with_its_maker(tmp_path: Path) -> None:
    made = make_temporary_directory(str(tmp_path / "made-"))
    assert temporary_owner(made) == os.getpid()
    assert temporary_owner(str(tmp_path)) is None
    # The marker is no metric file: prometheus-client reads only `*.db`.
    assert _sum(Path(made)) == {}
