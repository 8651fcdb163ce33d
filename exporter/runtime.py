"""The runtime object of one instrumented app: its settings, registry, HTTP metrics, request
observers and excluded paths, and the parts features attach to it (log sinks, error capture,
health monitor, demo load), started and stopped with the app.

`instrument(app)` makes it and keeps it on the app itself (`app.state`); `runtime_of(app)` finds
it again. Features attach their parts through the small `Part` protocol, so this module imports
none of them: logs/, errors/, health/ and api/ import it, never the other way round.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import logging
import os
import threading
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import mark_process_dead
from starlette.applications import Starlette

from exporter.config import Settings
from exporter.http.metrics import HttpMetrics
from exporter.http.middleware import RequestObserver

log = logging.getLogger("exporter.runtime")
_ON_STATE = "exporter_runtime"  # the attribute of `app.state` that holds the app's runtime


class Part(Protocol):
    """What a feature attaches to the runtime: started and stopped with the app."""

    def start(self) -> object:
        """Start (on the event loop's thread, before the app's own start-up)."""

    def stop(self, timeout: float) -> object:
        """Stop within `timeout` seconds; an awaitable returned is awaited in the lifespan.
        False means it did not end in time (a `Worker`'s answer)."""


P = TypeVar("P", bound=Part)


class Runtime:
    """What `instrument(app)` set up for one app, and the parts features attached to it.

    The app's lifespan is wrapped once: at start-up the parts start in the order they were
    attached, then the app's own lifespan runs; at shutdown the parts stop in reverse order,
    each within `stop_timeout`, and with `PROMETHEUS_MULTIPROC_DIR` set this process's live
    gauges (in-progress requests) are dropped, so they stop adding up. A part that fails to
    start or stop is logged and the others go on: the app never fails for it. A server without
    a lifespan (or one that exits before it ends) gets the same stop from `atexit`. uvicorn's
    workers re-raise SIGTERM after a graceful shutdown, so there only the lifespan's stop runs,
    and a worker killed outright gets neither (docs/multiprocess.md).
    """

    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry,
        metrics: HttpMetrics,
        multiprocess_dir: str | None = None,
        stop_timeout: float = 5.0,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.multiprocess_dir = multiprocess_dir
        self.stop_timeout = stop_timeout
        # Shared with the middleware: observers added later still see every request.
        self.observers: list[RequestObserver] = []
        self.error_observers: list[RequestObserver] = []  # told only of requests that raised
        # Paths and templates not counted beside the settings' (read when the app first serves).
        self.excluded: list[str] = [settings.metrics_path]
        self._parts: dict[str, Part] = {}
        self._started = False
        self._lock = threading.Lock()
        # Through a weak reference: an app nobody holds any more takes its runtime along.
        self._at_exit = functools.partial(_stop_at_exit, weakref.ref(self))
        if multiprocess_dir:
            self._stop_at_exit_too()

    def add_observer(self, observer: RequestObserver, *, errors_only: bool = False) -> None:
        """Call `observer` with each completed request (the access log), or only with those
        that raised (`errors_only`: error capture)."""
        (self.error_observers if errors_only else self.observers).append(observer)

    def attach(self, name: str, part: P) -> P:
        """Start and stop `part` with the app (at once, when the app already started); returns
        it. `ValueError` when a part of that name is attached already."""
        with self._lock:
            if name in self._parts:
                raise ValueError(f"a part named {name!r} is attached already")
            self._parts[name] = part
            started = self._started
        self._stop_at_exit_too()
        if started:
            _start(name, part)
        return part

    def part(self, name: str) -> Part | None:
        """The part attached under `name`, or None."""
        return self._parts.get(name)

    def bind(self, app: Starlette) -> None:
        """Keep this runtime on `app` (see `runtime_of`) and wrap its lifespan; once per app."""
        setattr(app.state, _ON_STATE, self)
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(served: Any) -> AsyncIterator[Any]:
            self.start()
            try:
                async with inner(served) as state:
                    yield state
            finally:
                await self.stop()

        app.router.lifespan_context = lifespan

    def start(self) -> None:
        """Start every part in the order attached (the lifespan's start-up calls it)."""
        with self._lock:
            self._started = True
            parts = list(self._parts.items())
        self._stop_at_exit_too()
        for name, part in parts:
            _start(name, part)

    async def stop(self) -> None:
        """Stop every part in reverse order, each within `stop_timeout`; then drop this
        process's live gauges (the lifespan's shutdown calls it)."""
        for name, part in self._stopping():
            try:
                result = part.stop(self.stop_timeout)
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, self.stop_timeout)
            except asyncio.TimeoutError:
                result = False
            except Exception:
                log.exception("%s failed to stop", name)
                continue
            self._check_ended(name, result)
        self._stopped()

    def stop_now(self) -> None:
        """`stop()` without an event loop, as `atexit` runs it: an awaitable a part returns is
        closed (the loop it needed is gone)."""
        for name, part in self._stopping():
            try:
                result = part.stop(self.stop_timeout)
            except Exception:
                log.exception("%s failed to stop", name)
                continue
            if inspect.iscoroutine(result):
                result.close()
            self._check_ended(name, result)
        self._stopped()

    def _stopping(self) -> list[tuple[str, Part]]:
        with self._lock:
            self._started = False
            return list(reversed(self._parts.items()))

    def _check_ended(self, name: str, result: object) -> None:
        if result is False:
            log.warning("%s did not stop within %g s", name, self.stop_timeout)

    def _stopped(self) -> None:
        atexit.unregister(self._at_exit)
        if self.multiprocess_dir:
            mark_process_dead(os.getpid(), path=self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def _stop_at_exit_too(self) -> None:
        atexit.unregister(self._at_exit)  # registered once
        atexit.register(self._at_exit)


def _start(name: str, part: Part) -> None:
    try:
        part.start()
    except Exception:
        log.exception("%s failed to start", name)


def _stop_at_exit(ref: weakref.ref[Runtime]) -> None:
    runtime = ref()
    if runtime is not None:
        runtime.stop_now()


def runtime_of(app: Starlette) -> Runtime | None:
    """The runtime `instrument(app)` made for `app`, or None for an app it never saw."""
    runtime = getattr(app.state, _ON_STATE, None)
    return runtime if isinstance(runtime, Runtime) else None
