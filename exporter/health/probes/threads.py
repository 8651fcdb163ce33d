"""Blocking probe calls off the event loop: a daemon thread per call, one call per dependency.

`asyncio.wait_for` stops waiting for a thread but cannot stop it. With a shared executor, a call
that never returns (a database file on a hung network mount) took one more worker every round
until none was left and every thread-based probe read "timed out". Here a dependency whose
previous call is still running is skipped instead, so it holds one thread at most. The threads
are daemons, so a call that never returns cannot hold up the loop's shutdown or the exit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class StillRunning(RuntimeError):
    """The previous call for this dependency has not returned; no new one was started."""


class ProbeThreads:
    """Runs blocking calls in threads of their own, at most one in flight per key."""

    def __init__(self) -> None:
        self._busy: dict[str, Future[Any]] = {}

    async def run(self, key: str, call: Callable[[], T]) -> T:
        """`call()` in a new daemon thread; `StillRunning` while `key`'s last call runs."""
        previous = self._busy.get(key)
        if previous is not None and not previous.done():
            raise StillRunning("skipped: the previous probe has not returned yet")
        future: Future[T] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the awaiting probe
                future.set_exception(exc)

        self._busy[key] = future
        threading.Thread(target=work, name=f"exporter-probe-{key}", daemon=True).start()
        return await asyncio.wrap_future(future)
