"""The background prober: every interval, all probes at once, each under its own timeout.

It runs in its own thread with its own event loop, so neither a hanging dependency nor a slow
driver can stall the application's loop; scrapes and the API only read `results()`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence

from exporter.config.dependencies import Dependency, Queue, scrub
from exporter.health.probes.dependencies import BLOCKING_PROBES, PROBES, DriverMissing, Reading
from exporter.health.probes.queues import read_queue
from exporter.health.probes.results import ProbeResult, QueueReading
from exporter.health.probes.threads import ProbeThreads, StillRunning
from exporter.worker import Worker

log = logging.getLogger("exporter.probes")

ProbeObserver = Callable[[Dependency, float], None]


def _reason(exc: BaseException, secrets: tuple[str, ...], timeout: float) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, DriverMissing):
        return f"driver not installed: {exc}"
    if isinstance(exc, StillRunning):
        return str(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    return scrub(f"{type(exc).__name__}: {text}"[:300], secrets)


class ProbeRunner(Worker):
    """Probes `dependencies` and reads `queues` every `interval` seconds in a `Worker` thread
    (`exporter-probes`) with its own event loop; stopping cancels the probes in flight."""

    def __init__(
        self,
        dependencies: Sequence[Dependency],
        queues: Sequence[Queue],
        *,
        interval: float = 15.0,
        timeout: float = 2.0,
        on_probe: ProbeObserver | None = None,
    ) -> None:
        super().__init__("probes")
        self.dependencies = tuple(dependencies)
        self.queues = tuple(queues)
        self.interval = interval
        self.timeout = timeout
        self._on_probe = on_probe
        self._threads = ProbeThreads()
        # Replaced whole (never mutated) so readers need no lock.
        # Called before results are read: a worker that does not probe refreshes them there.
        self.before_read: Callable[[], None] = lambda: None
        self._dependency_results: dict[str, ProbeResult] = {}
        self._queue_results: dict[tuple[str, str], QueueReading] = {}
        self.rounds = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._lock = threading.Lock()
        self._round_done = threading.Condition(self._lock)

    def dependency_results(self) -> dict[str, ProbeResult]:
        """The last result of each dependency probed so far, by name."""
        self.before_read()
        return self._dependency_results

    def queue_results(self) -> dict[tuple[str, str], QueueReading]:
        """The last reading of each queue read so far, by (backend, queue)."""
        self.before_read()
        return self._queue_results

    def restore(self, dependencies: dict[str, ProbeResult],
                queues: dict[tuple[str, str], QueueReading]) -> None:
        """Hold these results (another worker's, read from the host's state)."""
        self._dependency_results, self._queue_results = dependencies, queues

    async def _call(self, dep: Dependency) -> Reading:
        blocking = BLOCKING_PROBES.get(dep.kind)
        if blocking is None:
            return await PROBES[dep.kind](dep, self.timeout)
        return await self._threads.run(dep.name, lambda: blocking(dep, self.timeout))

    async def probe(self, dep: Dependency) -> ProbeResult:
        """Probe one dependency now; never raises."""
        start = time.perf_counter()
        skipped = False
        try:
            latency, details = await asyncio.wait_for(self._call(dep), self.timeout)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a probe must never take the prober down
            skipped = isinstance(exc, StillRunning)
            reason = _reason(exc, dep.secrets, self.timeout)
            previous = self._dependency_results.get(dep.name)
            if previous is None or previous.reason != reason:  # log changes, not every round
                log.warning("dependency %s (%s) is down: %s", dep.name, dep.kind, reason)
            return ProbeResult(False, None, reason, time.time())
        finally:
            if self._on_probe is not None and not skipped:
                self._on_probe(dep, time.perf_counter() - start)
        previous = self._dependency_results.get(dep.name)
        if previous is not None and not previous.up:
            log.info("dependency %s (%s) is up again", dep.name, dep.kind)
        return ProbeResult(True, latency, "ok", time.time(), details)

    async def read(self, queue: Queue) -> QueueReading:
        """Read one queue now; never raises."""
        previous = self._queue_results.get((queue.backend, queue.queue))
        try:
            reading = await asyncio.wait_for(read_queue(queue, self.timeout), self.timeout)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            reason = _reason(exc, queue.secrets, self.timeout)
            if previous is None or previous.reason != reason:  # log changes, not every round
                log.warning("queue %s (%s) unreadable: %s", queue.queue, queue.backend, reason)
            return QueueReading(False, False, 0, None, {}, "none", reason, time.time())
        if previous is not None and not previous.ok:
            log.info("queue %s (%s) is readable again", queue.queue, queue.backend)
        return reading

    async def run_round(self) -> None:
        """One round: every probe and queue read concurrently; results replace the last ones."""
        probes = [self.probe(dep) for dep in self.dependencies]
        reads = [self.read(queue) for queue in self.queues]
        outcomes = await asyncio.gather(*probes, *reads)
        n = len(self.dependencies)
        self._dependency_results = {
            dep.name: result  # type: ignore[misc]
            for dep, result in zip(self.dependencies, outcomes[:n], strict=True)
        }
        self._queue_results = {
            (queue.backend, queue.queue): reading  # type: ignore[misc]
            for queue, reading in zip(self.queues, outcomes[n:], strict=True)
        }
        with self._round_done:
            self.rounds += 1
            self._round_done.notify_all()

    def wait_for_rounds(self, rounds: int, timeout: float) -> bool:
        """Block until `rounds` rounds have completed (for start-up checks and tests)."""
        with self._round_done:
            return self._round_done.wait_for(lambda: self.rounds >= rounds, timeout)

    def start(self) -> None:
        """Start the background thread (no-op when there is nothing to probe or it runs)."""
        if self.dependencies or self.queues:
            super().start()

    def _finish(self, timeout: float) -> None:
        # In-flight probes are cancelled: the loop is woken from this thread.
        self._stopping = True
        loop, wake = self._loop, self._wake
        if self.alive and loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed in between
                pass

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _main(self) -> None:
        self._wake = wake = asyncio.Event()
        while not self._stopping:
            round_task = asyncio.ensure_future(self.run_round())
            stop_task = asyncio.ensure_future(wake.wait())
            await asyncio.wait({round_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            if not round_task.done():  # stopping: cancel probes still in flight
                round_task.cancel()
                await asyncio.gather(round_task, return_exceptions=True)
                stop_task.cancel()
                return
            stop_task.cancel()
            try:
                await asyncio.wait_for(wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
