"""Host metrics: values from psutil, computed at scrape, degrading instead of failing."""

from __future__ import annotations

import os
from collections import namedtuple

import psutil
import pytest
from prometheus_client import CollectorRegistry

from exporter.host import HostCollector, cpu_reader

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")
Memory = namedtuple("Memory", "total available")
Disk = namedtuple("Disk", "total used free")


def test_real_host_values_are_ratios_close_to_psutil(registry: CollectorRegistry) -> None:
    HostCollector(["/"], registry=registry)
    cpu = registry.get_sample_value("system_cpu_usage_ratio")
    memory = registry.get_sample_value("system_memory_usage_ratio")
    disk = registry.get_sample_value("system_disk_usage_ratio", {"mountpoint": "/"})
    assert cpu is not None and 0.0 <= cpu <= 1.0
    assert memory is not None and 0.0 < memory < 1.0
    assert disk is not None
    assert disk == pytest.approx(psutil.disk_usage("/").percent / 100, abs=0.01)
    vm = psutil.virtual_memory()
    assert memory == pytest.approx(1 - vm.available / vm.total, abs=0.05)
    assert registry.get_sample_value("system_load1") == pytest.approx(os.getloadavg()[0], abs=2)
    assert registry.get_sample_value("system_cpu_cores") == psutil.cpu_count()


def test_cpu_ratio_is_the_busy_share_between_reads() -> None:
    readings = iter(
        [
            CpuTimes(100, 0, 50, 850, 0, 0, 0, 0, 0, 0),  # at construction
            CpuTimes(160, 0, 70, 870, 0, 0, 0, 0, 0, 0),  # +80 busy, +20 idle
            CpuTimes(160, 0, 70, 970, 0, 0, 0, 0, 0, 0),  # +0 busy, +100 idle
        ]
    )
    clock = iter([0.0, 10.0, 20.0])
    registry = CollectorRegistry()
    HostCollector(
        [], registry=registry, cpu_times=lambda: next(readings), clock=lambda: next(clock)
    )
    assert registry.get_sample_value("system_cpu_usage_ratio") == pytest.approx(0.8)
    assert registry.get_sample_value("system_cpu_usage_ratio") == pytest.approx(0.0)


def test_guest_time_is_not_counted_twice() -> None:
    readings = iter(
        [
            CpuTimes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
            CpuTimes(50, 0, 0, 50, 0, 0, 0, 0, 40, 0),  # guest is part of user already
        ]
    )
    clock = iter([0.0, 1.0])
    registry = CollectorRegistry()
    HostCollector(
        [], registry=registry, cpu_times=lambda: next(readings), clock=lambda: next(clock)
    )
    assert registry.get_sample_value("system_cpu_usage_ratio") == pytest.approx(0.5)


def test_memory_and_disk_ratios_from_fixture_data(registry: CollectorRegistry) -> None:
    disks = {"/": Disk(1000, 600, 300), "/data": Disk(200, 190, 10)}  # df: used/(used+free)
    HostCollector(
        ["/", "/data"],
        registry=registry,
        virtual_memory=lambda: Memory(total=1000, available=250),
        disk_usage=lambda path: disks[path],
        load_average=lambda: (1.5, 1.0, 0.5),
    )
    assert registry.get_sample_value("system_memory_usage_ratio") == pytest.approx(0.75)
    assert registry.get_sample_value("system_disk_usage_ratio", {"mountpoint": "/"}) == (
        pytest.approx(600 / 900)
    )
    assert registry.get_sample_value("system_disk_usage_ratio", {"mountpoint": "/data"}) == (
        pytest.approx(0.95)
    )
    assert registry.get_sample_value("system_disk_free_bytes", {"mountpoint": "/data"}) == 10
    assert registry.get_sample_value("system_load5") == 1.0


def test_an_unreadable_source_drops_its_metrics_not_the_scrape(registry: CollectorRegistry) -> None:
    def broken_disk(path: str) -> Disk:
        if path == "/gone":
            raise FileNotFoundError(path)
        return Disk(100, 50, 50)

    def broken_memory() -> Memory:
        raise OSError("no /proc/meminfo")

    HostCollector(
        ["/gone", "/"], registry=registry, disk_usage=broken_disk, virtual_memory=broken_memory
    )
    assert registry.get_sample_value("system_disk_usage_ratio", {"mountpoint": "/gone"}) is None
    assert registry.get_sample_value("system_disk_usage_ratio", {"mountpoint": "/"}) == 0.5
    assert registry.get_sample_value("system_memory_usage_ratio") is None
    assert registry.get_sample_value("system_load1") is not None


def test_registering_does_not_collect() -> None:
    calls: list[str] = []

    def disk(path: str) -> Disk:
        calls.append(path)
        return Disk(1, 1, 0)

    registry = CollectorRegistry()
    HostCollector(["/"], registry=registry, disk_usage=disk)
    assert calls == []
    registry.get_sample_value("system_disk_usage_ratio", {"mountpoint": "/"})
    assert calls == ["/"]


def test_each_reader_gets_the_busy_share_since_its_own_previous_read() -> None:
    readings = iter(
        [
            CpuTimes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),  # t=0, construction
            CpuTimes(80, 0, 0, 20, 0, 0, 0, 0, 0, 0),  # t=10, history: 80 of 100 busy
            CpuTimes(80, 0, 0, 120, 0, 0, 0, 0, 0, 0),  # t=11, scrape: 80 of 200 since t=0
            CpuTimes(160, 0, 0, 140, 0, 0, 0, 0, 0, 0),  # t=20, history: 80 of 200 since t=10
        ]
    )
    clock = iter([0.0, 10.0, 11.0, 20.0])
    registry = CollectorRegistry()
    HostCollector(
        [], registry=registry, cpu_times=lambda: next(readings), clock=lambda: next(clock)
    )
    with cpu_reader("history"):
        assert registry.get_sample_value("system_cpu_usage_ratio") == pytest.approx(0.8)
    assert registry.get_sample_value("system_cpu_usage_ratio") == pytest.approx(0.4)
    with cpu_reader("history"):
        assert registry.get_sample_value("system_cpu_usage_ratio") == pytest.approx(0.4)
