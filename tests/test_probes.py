"""Dependency probes against the real servers on this machine, and a server that never answers."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.config.dependencies import parse_dependency
from exporter.health.dependency_collector import DependencyCollector, ProbeDurations
from exporter.health.probes.results import ProbeResult
from exporter.health.probes.runner import ProbeRunner
from tests.conftest import require_tcp
from tests.probe_helpers import hanging_server

WRONG = "Wr0ng-pa55word-" + uuid.uuid4().hex[:8]


def probe(name: str, url: str, timeout: float = 2.0):  # type: ignore[no-untyped-def]
    runner = ProbeRunner([parse_dependency(name, url)], [], timeout=timeout)
    return asyncio.run(runner.probe(runner.dependencies[0]))


def test_redis_latency_and_info() -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    result = probe("cache", "redis://127.0.0.1:6379/0")
    assert result.up and result.reason == "ok"
    assert result.latency is not None and 0 < result.latency < 2
    assert result.details["used_memory_bytes"] > 0
    assert result.details["connected_clients"] >= 1


def test_postgresql_select_one() -> None:
    require_tcp("127.0.0.1", 5432, "PostgreSQL")
    result = probe("db", "postgresql://postgres@127.0.0.1:5432/test")
    assert result.up, result.reason
    assert result.latency is not None and result.latency > 0


def test_mariadb_select_one() -> None:
    require_tcp("127.0.0.1", 3306, "MariaDB")
    result = probe("db", "mysql://root@127.0.0.1:3306/test")
    assert result.up, result.reason
    assert result.latency is not None and result.latency > 0


def test_sqlite_and_duckdb_files(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "app.db").close()
    import duckdb

    duckdb.connect(str(tmp_path / "app.duckdb")).close()
    assert probe("lite", f"sqlite://{tmp_path}/app.db").up
    assert probe("duck", f"duckdb://{tmp_path}/app.duckdb").up


def test_missing_sqlite_file_reads_down_and_is_not_created(tmp_path: Path) -> None:
    result = probe("lite", f"sqlite://{tmp_path}/missing.db")
    assert not result.up and "unable to open" in result.reason
    assert not (tmp_path / "missing.db").exists()


def _assert_down_without_password(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result = probe("db", url)
    assert not result.up
    assert result.reason and result.reason != "ok"
    assert WRONG not in result.reason
    assert WRONG not in caplog.text and "down" in caplog.text


def test_mariadb_wrong_password_reads_down_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_tcp("127.0.0.1", 3306, "MariaDB")
    _assert_down_without_password(f"mysql://root:{WRONG}@127.0.0.1:3306/test", caplog)


def test_redis_wrong_password_reads_down_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    import redis

    user = f"probe-{uuid.uuid4().hex[:8]}"
    admin = redis.Redis()
    admin.acl_setuser(user, enabled=True, passwords=["+right-password"], commands=["+@all"])
    try:
        assert probe("cache", f"redis://{user}:right-password@127.0.0.1:6379/0").up
        _assert_down_without_password(f"redis://{user}:{WRONG}@127.0.0.1:6379/0", caplog)
    finally:
        admin.acl_deluser(user)
        admin.close()


def test_hanging_dependency_times_out_and_is_counted() -> None:
    registry = CollectorRegistry()
    with hanging_server() as (port, accepted):
        dep = parse_dependency("stuck", f"postgresql://postgres@127.0.0.1:{port}/test")
        durations = ProbeDurations(registry)
        runner = ProbeRunner([dep], [], timeout=0.3, on_probe=durations.observe)
        DependencyCollector(runner, registry)
        asyncio.run(runner.run_round())
        assert accepted, "the probe never connected"
    result = runner.dependency_results()["stuck"]
    assert not result.up and result.reason == "timed out after 0.3 s"
    labels = {"name": "stuck", "kind": "postgresql"}
    assert registry.get_sample_value("dependency_up", labels) == 0.0
    assert registry.get_sample_value("dependency_latency_seconds", labels) is None
    assert registry.get_sample_value("dependency_probe_duration_seconds_count", labels) == 1.0


def test_collector_exposes_up_latency_and_redis_gauges() -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    registry = CollectorRegistry()
    runner = ProbeRunner([parse_dependency("cache", "redis://127.0.0.1:6379/0")], [])
    DependencyCollector(runner, registry)
    assert registry.get_sample_value("dependency_up", {"name": "cache", "kind": "redis"}) is None
    asyncio.run(runner.run_round())
    labels = {"name": "cache", "kind": "redis"}
    assert registry.get_sample_value("dependency_up", labels) == 1.0
    latency = registry.get_sample_value("dependency_latency_seconds", labels)
    assert latency is not None and latency > 0
    assert registry.get_sample_value("dependency_redis_used_memory_bytes", {"name": "cache"})


def test_background_thread_probes_on_its_interval_and_stops() -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    runner = ProbeRunner(
        [parse_dependency("cache", "redis://127.0.0.1:6379/0")], [], interval=0.05
    )
    runner.start()
    try:
        assert runner.wait_for_rounds(3, timeout=10)
    finally:
        runner.stop()
        runner.stop()  # idempotent
    rounds = runner.rounds
    assert runner.wait_for_rounds(rounds + 1, timeout=0.3) is False


def test_a_dependency_that_stays_down_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.probes")
    runner = ProbeRunner([parse_dependency("lite", f"sqlite://{tmp_path}/missing.db")], [])
    for _ in range(3):
        asyncio.run(runner.run_round())
    assert caplog.text.count("dependency lite (sqlite) is down") == 1
    sqlite3.connect(tmp_path / "missing.db").close()
    asyncio.run(runner.run_round())
    assert "dependency lite (sqlite) is up again" in caplog.text


def test_sqlite_and_duckdb_accept_the_four_slash_absolute_form(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "app.db").close()
    import duckdb

    duckdb.connect(str(tmp_path / "app.duckdb")).close()
    lite = probe("lite", f"sqlite:///{tmp_path}/app.db")
    assert lite.up, lite.reason
    assert probe("duck", f"duckdb:///{tmp_path}/app.duckdb").up


@pytest.mark.parametrize(("encoded", "name"), [("x%23y.db", "x#y.db"), ("d%3Fq.db", "d?q.db")])
def test_encoded_question_mark_or_hash_in_a_sqlite_path_probes_that_file_only(
    tmp_path: Path, encoded: str, name: str
) -> None:
    url = f"sqlite://{tmp_path}/{encoded}"
    missing = probe("lite", url)
    assert not missing.up and "unable to open" in missing.reason
    assert list(tmp_path.iterdir()) == []  # nothing created, not even a truncated name
    sqlite3.connect(tmp_path / name).close()
    assert probe("lite", url).up
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def _release_fifo(path: Path) -> None:
    """Open the FIFO for writing so a reader blocked in open() returns, then close it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no reader left
        return
    os.close(fd)


def test_a_hung_thread_probe_holds_one_thread_and_never_starves_the_others(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "hung.db"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes: a hung file system
    sqlite3.connect(tmp_path / "ok.db").close()
    runner = ProbeRunner(
        [parse_dependency("hung", f"sqlite://{fifo}"),
         parse_dependency("lite", f"sqlite://{tmp_path}/ok.db")],
        [], timeout=0.2,
    )
    rounds = (os.cpu_count() or 1) + 8  # more than the default executor's workers

    async def run() -> list[dict[str, ProbeResult]]:
        seen = []
        for _ in range(rounds):
            await runner.run_round()
            seen.append(runner.dependency_results())
        return seen

    try:
        seen = asyncio.run(run())
        hung_threads = [t for t in threading.enumerate() if "hung" in t.name]
    finally:
        _release_fifo(fifo)
    assert all(r["lite"].up for r in seen), [r["lite"].reason for r in seen]
    assert seen[0]["hung"].reason == "timed out after 0.2 s"
    assert all(
        r["hung"].reason == "skipped: the previous probe has not returned yet" for r in seen[1:]
    )
    assert len(hung_threads) == 1


def test_redis_user_without_info_reads_up_without_the_server_gauges() -> None:
    require_tcp("127.0.0.1", 6379, "Redis")
    import redis

    user = f"probe-{uuid.uuid4().hex[:8]}"
    admin = redis.Redis()
    admin.acl_setuser(user, enabled=True, passwords=["+ping-only-pw"], commands=["+ping"])
    try:
        result = probe("cache", f"redis://{user}:ping-only-pw@127.0.0.1:6379/0")
    finally:
        admin.acl_deluser(user)
        admin.close()
    assert result.up, result.reason
    assert result.latency is not None and result.latency > 0
    assert result.details == {}


def test_probe_duration_buckets_reach_the_longest_timeout() -> None:
    from exporter.config import Settings

    registry = CollectorRegistry()
    durations = ProbeDurations(registry)
    longest = max(m.le for m in Settings.model_fields["probe_timeout_seconds"].metadata
                  if hasattr(m, "le"))
    dep = parse_dependency("slow", "redis://127.0.0.1:6379/0")
    durations.observe(dep, longest - 1)
    bucket = "dependency_probe_duration_seconds_bucket"
    labels = {"name": "slow", "kind": "redis"}
    assert registry.get_sample_value(bucket, {**labels, "le": f"{float(longest)}"}) == 1.0
    assert registry.get_sample_value(bucket, {**labels, "le": "30.0"}) == 0.0


def test_latency_is_absent_while_a_dependency_is_down(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "app.db").close()
    registry = CollectorRegistry()
    runner = ProbeRunner([parse_dependency("lite", f"sqlite://{tmp_path}/app.db")], [])
    DependencyCollector(runner, registry)
    labels = {"name": "lite", "kind": "sqlite"}
    asyncio.run(runner.run_round())
    assert registry.get_sample_value("dependency_latency_seconds", labels) is not None
    (tmp_path / "app.db").unlink()
    asyncio.run(runner.run_round())
    assert registry.get_sample_value("dependency_up", labels) == 0.0
    # Not the last successful value: a stale latency would read as a healthy one.
    assert registry.get_sample_value("dependency_latency_seconds", labels) is None
