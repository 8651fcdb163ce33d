"""The worker contract every background thread follows: start, stop with a deadline, atexit,
after fork, and a periodic loop that outlives a failing interval."""

from __future__ import annotations

import atexit
import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.worker import PeriodicWorker, Worker

REPO = Path(__file__).resolve().parent.parent
_STOP = object()


class Consumer(Worker):
    """A queue consumer taking `seconds_each` per item; `hang` makes it ignore the stop."""

    def __init__(self, seconds_each: float = 0.0, hang: bool = False) -> None:
        super().__init__("test-consumer")
        self.items: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.done: list[object] = []
        self.seconds_each = seconds_each
        self.hang = hang
        self.overdue_calls = 0
        self.after_stop_calls = 0

    def _run(self) -> None:
        while True:
            item = self.items.get()
            if item is _STOP and not self.hang:
                return
            if item is not _STOP:
                time.sleep(self.seconds_each)
                self.done.append(item)

    def _finish(self, timeout: float) -> None:
        self.items.put(_STOP)  # behind what is queued: the thread drains first

    def _overdue(self) -> float:
        self.overdue_calls += 1
        return 0.0

    def _after_stop(self) -> None:
        self.after_stop_calls += 1


def ours(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_start_runs_one_daemon_thread_named_after_the_worker() -> None:
    worker = Consumer()
    worker.start()
    worker.start()
    try:
        [thread] = ours("exporter-test-consumer")
        assert thread.daemon and worker.alive
    finally:
        worker.stop()


def test_stop_drains_what_is_queued_within_the_deadline_and_is_idempotent() -> None:
    worker = Consumer(seconds_each=0.01)
    worker.start()
    for n in range(20):
        worker.items.put(n)
    assert worker.stop(timeout=5) is True
    assert worker.done == list(range(20)) and not worker.alive
    assert worker.stop(timeout=5) is True  # at once: nothing asked or joined twice
    assert worker.after_stop_calls == 1 and worker.overdue_calls == 0


def test_stop_reports_a_thread_that_does_not_end_by_the_deadline() -> None:
    worker = Consumer(hang=True)
    worker.start()
    started = time.monotonic()
    assert worker.stop(timeout=0.2) is False
    assert 0.2 <= time.monotonic() - started < 2
    assert worker.overdue_calls == 1 and worker.after_stop_calls == 1
    assert worker.alive and worker.stop() is False  # still hung: reported again
    worker.hang = False  # let it go, so it does not outlive the test
    worker.items.put(_STOP)
    wait_for(lambda: not worker.alive)
    assert worker.stop() is True


def test_a_stopped_worker_stays_stopped() -> None:
    worker = Consumer()
    worker.stop()
    worker.start()
    assert not worker.alive and worker.stopped and ours("exporter-test-consumer") == []


def test_stop_from_the_workers_own_thread_does_not_wait_for_itself() -> None:
    answers: list[bool] = []

    class StopsItself(Worker):
        def _run(self) -> None:
            answers.append(self.stop(timeout=5))

    worker = StopsItself("test-self")
    worker.start()
    deadline = time.monotonic() + 5
    while not answers:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert answers == [False]  # it cannot have ended while it asks


def test_start_registers_stop_with_atexit_once_and_stop_unregisters_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered: list[Callable[..., object]] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(atexit, "unregister", lambda f: registered.__setitem__(
        slice(None), [g for g in registered if g != f]))
    worker = Consumer()
    worker.start()
    worker.start()
    assert registered == [worker.stop]
    worker.stop()
    assert registered == []


def test_a_process_exiting_without_stop_drains_its_workers(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from exporter.worker import Worker

        class Slow(Worker):
            def _run(self):
                while not self.stopped:
                    time.sleep(0.01)
                time.sleep(0.2)  # drains after the stop, as a writer does
                Path(sys.argv[1]).write_text("drained")

        Slow("test-exit").start()
        # no stop(): the interpreter exits here
    """)
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-c", script, str(out)], cwd=REPO, check=True, timeout=60)
    assert out.read_text() == "drained"


def test_a_forked_child_does_not_see_the_parents_thread_and_starts_its_own() -> None:
    worker = Consumer()
    worker.start()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            signal.alarm(10)  # a join of the parent's thread would hang: die instead
            report = [worker.alive, worker.stopped]
            worker.start()
            worker.items.put("child's")
            report += [worker.stop(timeout=5), worker.done == ["child's"]]
            report.append(len(ours("exporter-test-consumer")) == 0)
            os.write(write, repr(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        assert pipe.read() == repr([False, False, True, True, True])
    assert worker.alive  # the parent's thread is untouched by the child
    worker.items.put("parent's")
    assert worker.stop(timeout=5) and worker.done == ["parent's"]


class Ticker(PeriodicWorker):
    def __init__(self, fail: Callable[[int], bool], quiet: float = 0.0,
                 first_at_once: bool = True) -> None:
        super().__init__("test-ticker", 0.01, log=logging.getLogger("tests.ticker"),
                         failure="tick failed", quiet=quiet, first_at_once=first_at_once)
        self.ticks = 0
        self._fail = fail

    def run_once(self) -> None:
        self.ticks += 1
        if self._fail(self.ticks):
            raise RuntimeError(f"tick {self.ticks}")


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_failing_interval_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticker = Ticker(fail=lambda tick: tick == 2)
    with caplog.at_level(logging.ERROR, "tests.ticker"):
        ticker.start()
        wait_for(lambda: ticker.ticks >= 5)
        assert ticker.stop()
    assert ticker.failures == 1
    [record] = [r for r in caplog.records if r.name == "tests.ticker"]
    assert record.getMessage() == "tick failed" and record.exc_info is not None
    assert str(record.exc_info[1]) == "tick 2"


def test_a_repeating_failure_is_counted_each_time_and_logged_once_per_quiet_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticker = Ticker(fail=lambda tick: True, quiet=60.0)
    with caplog.at_level(logging.ERROR, "tests.ticker"):
        ticker.start()
        wait_for(lambda: ticker.failures >= 5)
        ticker.stop()
    assert len([r for r in caplog.records if r.name == "tests.ticker"]) == 1


def test_the_first_interval_runs_at_once_or_after_one_interval() -> None:
    at_once = Ticker(fail=lambda tick: False)
    at_once.interval = later_interval = 60.0
    at_once.start()
    wait_for(lambda: at_once.ticks == 1)
    at_once.stop()
    later = Ticker(fail=lambda tick: False, first_at_once=False)
    later.interval = later_interval
    later.start()
    time.sleep(0.1)
    assert later.stop() and later.ticks == 0  # and the stop did not wait out the interval
