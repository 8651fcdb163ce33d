"""The metric objects a registry holds once, whatever number of apps or sinks use it.

prometheus-client refuses a second metric of the same name on one registry, so a second app
instrumented on the same registry (or a second set of log sinks, a second error capture) must
share the first one's metric objects: `parts_on(registry).get_or_create(key, factory)` returns
them, made by `factory` the first time. One weak mapping from registry to its parts, under one
lock, instead of one per module: a registry nobody holds any more takes its parts with it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry

T = TypeVar("T")

_lock = threading.RLock()  # re-entrant: a factory may ask for another part of its registry
_parts: weakref.WeakKeyDictionary[CollectorRegistry, RegistryParts] = weakref.WeakKeyDictionary()


class RegistryParts:
    """What one registry holds once, by name ("http metrics", "exception metrics"...)."""

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}

    def get_or_create(self, key: str, factory: Callable[[], T]) -> T:
        """The part named `key`, made by `factory()` on first use (once, under the lock)."""
        with _lock:
            if key not in self._made:
                self._made[key] = factory()
            return cast(T, self._made[key])


def parts_on(registry: CollectorRegistry) -> RegistryParts:
    """The shared parts of `registry`, empty at first."""
    with _lock:
        parts = _parts.get(registry)
        if parts is None:
            parts = _parts[registry] = RegistryParts()
        return parts
