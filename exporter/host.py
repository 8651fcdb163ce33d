"""Host CPU, memory, disk and load, read from psutil at scrape time (local reads only)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import psutil
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# The CPU ratio is the busy share between two reads; reads closer than this reuse the last value.
_MIN_CPU_WINDOW = 0.05
# Who reads the CPU ratio now. Each reader gets the busy share since its own previous read, so
# the history sampler (whose samples feed HighCpuUsage's `for`) and Prometheus scrapes do not
# cut each other's windows short. Readers are named by the code, so the set stays small.
_reader: ContextVar[str] = ContextVar("exporter_cpu_reader", default="scrape")


@contextmanager
def cpu_reader(name: str) -> Iterator[None]:
    """Within the block, `system_cpu_usage_ratio` covers the time since `name`'s previous read."""
    token = _reader.set(name)
    try:
        yield
    finally:
        _reader.reset(token)


def _busy_and_total(times: Any) -> tuple[float, float]:
    # guest time is already counted in user/nice on Linux (psutil does the same subtraction).
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class HostCollector(Collector):
    """`system_*` gauges: CPU, memory and per-mount disk usage ratios, load averages.

    Every source is injectable so tests can feed fixture data; a source that fails drops its
    metrics from that scrape instead of failing it.
    """

    def __init__(
        self,
        disk_paths: Sequence[str] = ("/",),
        registry: CollectorRegistry | None = None,
        *,
        cpu_times: Callable[[], Any] = psutil.cpu_times,
        virtual_memory: Callable[[], Any] = psutil.virtual_memory,
        disk_usage: Callable[[str], Any] = psutil.disk_usage,
        load_average: Callable[[], tuple[float, float, float]] = os.getloadavg,
        cpu_count: Callable[[], int | None] = psutil.cpu_count,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._disk_paths = tuple(disk_paths)
        self._cpu_times = cpu_times
        self._virtual_memory = virtual_memory
        self._disk_usage = disk_usage
        self._load_average = load_average
        self._cpu_count = cpu_count
        self._clock = clock
        self._lock = threading.Lock()
        self._cpu_ratio: dict[str, float] = {}  # by reader
        self._last_cpu: dict[str, tuple[float, float, float]] = {}  # by reader
        try:
            self._first_cpu: tuple[float, float, float] | None = (
                clock(), *_busy_and_total(cpu_times())
            )
        except OSError:
            self._first_cpu = None
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Declared so registering does not run a collection.
        return [
            GaugeMetricFamily("system_cpu_usage_ratio", ""),
            GaugeMetricFamily("system_cpu_cores", ""),
            GaugeMetricFamily("system_memory_usage_ratio", ""),
            GaugeMetricFamily("system_memory_total_bytes", ""),
            GaugeMetricFamily("system_memory_available_bytes", ""),
            GaugeMetricFamily("system_disk_usage_ratio", "", labels=["mountpoint"]),
            GaugeMetricFamily("system_disk_total_bytes", "", labels=["mountpoint"]),
            GaugeMetricFamily("system_disk_free_bytes", "", labels=["mountpoint"]),
            GaugeMetricFamily("system_load1", ""),
            GaugeMetricFamily("system_load5", ""),
            GaugeMetricFamily("system_load15", ""),
        ]

    def cpu_ratio(self, reader: str | None = None) -> float | None:
        """Busy share of all CPUs since `reader`'s previous read (0..1; the reader set by
        `cpu_reader`, else "scrape"), or None when unreadable."""
        reader = reader or _reader.get()
        try:
            busy, total = _busy_and_total(self._cpu_times())
        except OSError:
            return None
        now = self._clock()
        with self._lock:
            last = self._last_cpu.get(reader, self._first_cpu)
            if last is None or now - last[0] >= _MIN_CPU_WINDOW:
                if last is not None and total > last[2]:
                    ratio = (busy - last[1]) / (total - last[2])
                    self._cpu_ratio[reader] = min(1.0, max(0.0, ratio))
                self._last_cpu[reader] = (now, busy, total)
            return self._cpu_ratio.get(reader, 0.0)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        cpu = self.cpu_ratio()
        if cpu is not None:
            yield GaugeMetricFamily(
                "system_cpu_usage_ratio", "Busy share of all CPUs since the previous scrape.", cpu
            )
        cores = self._cpu_count()
        if cores:
            yield GaugeMetricFamily("system_cpu_cores", "Logical CPUs of the host.", cores)
        yield from self._memory()
        yield from self._disks()
        yield from self._load()

    def _memory(self) -> Iterable[GaugeMetricFamily]:
        try:
            mem = self._virtual_memory()
        except OSError:
            return
        yield GaugeMetricFamily(
            "system_memory_usage_ratio",
            "Share of memory in use (1 - available / total).",
            1.0 - mem.available / mem.total if mem.total else 0.0,
        )
        yield GaugeMetricFamily("system_memory_total_bytes", "Physical memory.", mem.total)
        yield GaugeMetricFamily(
            "system_memory_available_bytes", "Memory available without swapping.", mem.available
        )

    def _disks(self) -> Iterable[GaugeMetricFamily]:
        ratio = GaugeMetricFamily(
            "system_disk_usage_ratio",
            "Share of the filesystem in use, as df counts it (used / (used + free)).",
            labels=["mountpoint"],
        )
        total = GaugeMetricFamily(
            "system_disk_total_bytes", "Size of the filesystem.", labels=["mountpoint"]
        )
        free = GaugeMetricFamily(
            "system_disk_free_bytes", "Bytes free for unprivileged users.", labels=["mountpoint"]
        )
        for path in self._disk_paths:
            try:
                usage = self._disk_usage(path)
            except OSError:
                continue
            usable = usage.used + usage.free
            ratio.add_metric([path], usage.used / usable if usable else 0.0)
            total.add_metric([path], usage.total)
            free.add_metric([path], usage.free)
        yield from (ratio, total, free)

    def _load(self) -> Iterable[GaugeMetricFamily]:
        try:
            one, five, fifteen = self._load_average()
        except OSError:
            return
        yield GaugeMetricFamily("system_load1", "Load average over 1 minute.", one)
        yield GaugeMetricFamily("system_load5", "Load average over 5 minutes.", five)
        yield GaugeMetricFamily("system_load15", "Load average over 15 minutes.", fifteen)
