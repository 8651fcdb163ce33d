"""Once per host, not once per worker: one worker runs the monitor, the others read its state.

With several workers (PROMETHEUS_MULTIPROC_DIR), each worker process holds an app and would
probe the dependencies, sample the history and evaluate the alerts on its own: N workers, N
probes per interval. Instead the workers race for a lock file in the multiprocess directory;
the holder runs the monitor and writes its state there after each interval (history points,
alerts, probe results; atomically, by rename); the others answer the API, the page and their
share of `/metrics` from that state, read again whenever it changes, and keep trying the lock,
so another worker takes over when the holder goes away (its history carries on).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from exporter.health.alerts import Alert
from exporter.health.history import Point
from exporter.health.monitor import HealthMonitor
from exporter.health.probes.results import ProbeResult, QueueReading
from exporter.worker import PeriodicWorker

log = logging.getLogger("exporter.health")
LOCK_NAME, STATE_NAME = "exporter-observability.lock", "exporter-observability.json"


def _values(values: Any) -> list[Any]:
    return [[name, [[list(map(list, labels)), v] for labels, v in by.items()]]
            for name, by in values.items()]


def _unvalues(items: list[Any]) -> dict[str, dict[Any, float]]:
    return {name: {tuple(tuple(p) for p in labels): v for labels, v in by} for name, by in items}


def dump_point(point: Point) -> dict[str, Any]:
    """A point as JSON: values, what alerts judge where it differs, and each instance's."""
    alerting = {k: v for k, v in point.alerting.items() if v != point.values.get(k)}
    return {"ts": point.ts, "v": _values(point.values), "a": _values(alerting),
            "i": [[name, _values(values)] for name, values in point.instances.items()]}


def load_point(data: dict[str, Any]) -> Point:
    """The point `dump_point` wrote."""
    values = _unvalues(data["v"])
    return Point(data["ts"], values, {**values, **_unvalues(data["a"])},
                 {name: _unvalues(v) for name, v in data["i"]})


class HostShare:
    """A runtime part: runs `monitor` in the worker that holds the host's lock, shares its state
    with the other workers through `directory` (the multiprocess directory)."""

    def __init__(self, monitor: HealthMonitor, directory: Path) -> None:
        self.monitor = monitor
        self._lock_path = directory / LOCK_NAME
        self._state_path = directory / STATE_NAME
        self._fd: int | None = None
        self._seen: tuple[float, int] | None = None
        self._mutex = threading.Lock()
        self._retry = _Retry(self._try_lead, monitor.history.interval)
        monitor.before_read = self.refresh
        monitor.sampler.on_sample.append(self._write)

    @property
    def leading(self) -> bool:
        """True in the worker that runs the monitor."""
        return self._fd is not None

    def start(self) -> None:
        """Lead if no other worker does; else follow, trying again every interval."""
        self._try_lead()
        if not self.leading:
            self._retry.start()

    def _try_lead(self) -> None:
        with self._mutex:
            if self._fd is not None:
                return
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return
            self._fd = fd
        self.refresh(force=True)  # carry on from the last leader's history
        self.monitor.before_read = _nothing
        log.info("this worker (pid %d) runs the health monitor for the host", os.getpid())
        self.monitor.start()

    def stop(self, timeout: float) -> bool:
        """Stop leading (or trying to); the lock goes with this process anyway."""
        stopped = self._retry.stop(timeout)
        if self.leading:
            stopped = self.monitor.stop(timeout) and stopped
            with self._mutex:
                if self._fd is not None:
                    os.close(self._fd)  # releases the lock: another worker takes over
                    self._fd = None
        return stopped

    def _write(self, point: Point) -> None:
        monitor = self.monitor
        state = {
            "pid": os.getpid(),
            "points": [dump_point(p) for p in monitor.history.points()],
            "alerts": [a.__dict__ for a in [*monitor.alerts.active(), *monitor.alerts.resolved()]],
            "dependencies": {n: r.__dict__ for n, r in monitor.runner.dependency_results().items()},
            "queues": [[list(k), r.__dict__] for k, r in monitor.runner.queue_results().items()],
        }
        temporary = self._state_path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(state, separators=(",", ":")), encoding="utf-8")
        os.replace(temporary, self._state_path)

    def refresh(self, force: bool = False) -> None:
        """Read the leader's state when it changed (a follower, before answering)."""
        try:
            info = os.stat(self._state_path)
        except OSError:
            return
        stamp = (info.st_mtime, info.st_size)
        if stamp == self._seen and not force:
            return
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            state = json.loads(self._state_path.read_text(encoding="utf-8"))
            monitor = self.monitor
            monitor.history.replace([load_point(p) for p in state["points"]])
            alerts = [Alert(**{**a, "labels": tuple(tuple(p) for p in a["labels"])})
                      for a in state["alerts"]]
            monitor.alerts.restore(alerts)  # type: ignore[union-attr]
            monitor.runner.restore(
                {n: ProbeResult(**r) for n, r in state["dependencies"].items()},
                {(k[0], k[1]): QueueReading(**r) for k, r in state["queues"]})
            self._seen = stamp


class _Retry(PeriodicWorker):
    """A follower tries the lock again every interval, so one takes over a leader that left."""

    def __init__(self, attempt: Any, interval: float) -> None:
        super().__init__("observability-lease", interval, log=log,
                         failure="taking the observability lease failed", first_at_once=False)
        self._attempt = attempt

    def run_once(self) -> None:
        self._attempt()


def _nothing() -> None:
    """What a leader does before reading: nothing (its state is its own)."""
