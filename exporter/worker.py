"""The one contract of the package's background threads: `Worker`, and `PeriodicWorker` for a
thread that does one thing every interval.

Every long-running thread the package starts (the log files' writer, the Loki shipper, the
error store's writer and the Sentry reporter, the probe runner, the history sampler, the Celery
metrics' flusher) is a `Worker`, so each behaves as described here, and only here. (Not
workers: the one-shot threads of blocking probe calls, which cannot be stopped, see
health/probes/threads.py, and prometheus-client's own `/metrics` server in a Celery worker.)

- `start()` starts one daemon thread named `exporter-<what>`; calling it again does nothing.
- `stop(timeout)` asks the thread to finish (the worker's `_finish`: a stop marker queued behind
  what is waiting, an event set...), lets it drain what it must until the deadline, joins it,
  and returns whether it ended in time. Only the first call does this; later calls return at
  once whether the thread has ended. A worker stopped in a process stays stopped there:
  `start()` does not bring it back.
- `start()` registers `stop` with `atexit` and `stop()` unregisters it, so a process that exits
  without stopping a worker still drains it (atexit runs before daemon threads are killed).
- A worker's state belongs to the process it was started in, known by pid. After `os.fork()`
  the child has no copy of the thread: there the worker is neither started nor stopped, `alive`
  is False, `stop()` joins nothing of the parent's, and `start()` starts the child's own thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

PREFIX = "exporter-"


class Worker:
    """One daemon thread with the lifecycle described in this module's docstring.

    A subclass implements `_run()`, the thread's body, which returns once `_finish()` asked it
    to; it may override `_overdue()` (the deadline passed with the thread still running) and
    `_after_stop()` (release what the thread used, once it ended or was given up).
    """

    def __init__(self, what: str, stop_timeout: float = 5.0) -> None:
        self.thread_name = PREFIX + what
        self.stop_timeout = stop_timeout  # what `stop()` waits without a timeout of its own
        self._thread: threading.Thread | None = None
        self._stop_asked = False
        self._lifecycle_lock = threading.Lock()
        self._process = os.getpid()

    @property
    def alive(self) -> bool:
        """True while this worker's thread runs in this process."""
        thread = self._thread
        return thread is not None and self._process == os.getpid() and thread.is_alive()

    @property
    def stopped(self) -> bool:
        """True once `stop()` was called in this process."""
        return self._stop_asked and self._process == os.getpid()

    def start(self) -> None:
        """Start the thread, unless it runs or the worker was stopped (in this process)."""
        if self._process != os.getpid():
            self._forget_parent()
        if self._thread is not None or self._stop_asked:  # without the lock: the usual case
            return
        with self._lifecycle_lock:
            if self._thread is not None or self._stop_asked:
                return
            thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread = thread
            thread.start()
        atexit.unregister(self.stop)  # registered once, whoever started it
        atexit.register(self.stop)

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to finish, let it drain within `timeout` seconds (default:
        `stop_timeout`) and join it; True when it ended in time. Idempotent."""
        if self._process != os.getpid():
            self._forget_parent()
        with self._lifecycle_lock:
            first, self._stop_asked = not self._stop_asked, True
            thread = self._thread
        if not first:
            return thread is None or not thread.is_alive()
        wait = self.stop_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        self._finish(wait)
        ended = thread is None
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                grace = self._overdue()
                if grace > 0:
                    thread.join(grace)
            ended = not thread.is_alive()
        atexit.unregister(self.stop)
        self._after_stop()
        return ended

    def _forget_parent(self) -> None:
        # In a forked child: the thread, the stop and a lock the parent's thread may have held
        # at the fork were the parent's.
        self._process = os.getpid()
        self._lifecycle_lock = threading.Lock()
        self._thread = None
        self._stop_asked = False

    def _run(self) -> None:
        """The thread's body: return once `_finish()` asked it to."""
        raise NotImplementedError

    def _finish(self, timeout: float) -> None:
        """Ask the thread to finish within `timeout` seconds (called once, by `stop()`)."""

    def _overdue(self) -> float:
        """The deadline passed and the thread still runs: cut short what it waits for and
        return how many seconds more it may take (0: give up on it)."""
        return 0.0

    def _after_stop(self) -> None:
        """Release what the thread used (called once, by `stop()`, after the join)."""


class PeriodicWorker(Worker):
    """A `Worker` that calls `run_once()` every `interval` seconds, the first call at once
    (or after one interval, with `first_at_once=False`).

    A call that raises is counted in `failures` and logged on `log` as `failure` (a failure
    repeating within `quiet` seconds of the last one logged is counted only); the loop goes on.
    """

    def __init__(
        self,
        what: str,
        interval: float,
        *,
        log: logging.Logger,
        failure: str,
        first_at_once: bool = True,
        quiet: float = 0.0,
        stop_timeout: float = 5.0,
    ) -> None:
        super().__init__(what, stop_timeout)
        self.interval = interval
        self.failures = 0
        self._log = log
        self._failure = failure
        self._first_at_once = first_at_once
        self._quiet = quiet
        self._logged_at: float | None = None
        self._wake = threading.Event()

    def run_once(self) -> None:
        """The work of one interval."""
        raise NotImplementedError

    def _run(self) -> None:
        if not self._first_at_once and self._wake.wait(self.interval):
            return
        while not self._wake.is_set():
            try:
                self.run_once()
            except Exception:  # one bad interval must not end the thread
                self._failed()
            self._wake.wait(self.interval)

    def _failed(self) -> None:
        self.failures += 1
        now = time.monotonic()
        if self._logged_at is None or now - self._logged_at >= self._quiet:
            self._logged_at = now
            self._log.exception(self._failure)

    def _finish(self, timeout: float) -> None:
        self._wake.set()

    def _forget_parent(self) -> None:
        super()._forget_parent()
        self._wake = threading.Event()  # the parent may have set its copy
