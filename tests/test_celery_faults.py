"""A real Celery worker (prefork, 2 processes) under the faults a user meets: a busy pool
process killed with `kill -9` (on Redis and RabbitMQ), errors reported from inside tasks, a
restart by SIGHUP and a metrics directory left over from a crash (on Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client import CollectorRegistry

from exporter import create_app, load_settings
from exporter.errors.store import ErrorStore
from exporter.metric_files import MARKER
from tests.asgi import serve_in_process
from tests.celery_app import make_app
from tests.celery_runner import (
    REDIS,
    Samples,
    delete_queue,
    scrape,
    start_worker,
    stop_worker,
    value,
    wait_for_scrape,
)
from tests.conftest import free_port, require_tcp

TOKEN = "faults-token-5a4b3c"
# The kill -9 of a busy pool process, on both brokers the Celery tests use.
BROKERS = {"redis": (REDIS, 6379), "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672)}


def _gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for its parent has exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise TimeoutError(what)


@pytest.fixture
def queue() -> Iterator[str]:
    require_tcp("127.0.0.1", 6379, "redis")
    name = f"exporter-faults-{uuid.uuid4().hex[:10]}"
    yield name
    delete_queue("redis", REDIS, name)


@dataclass
class KilledRun:
    """What a worker did around the `kill -9` of its busy pool process."""

    before_kill: Samples
    first_scrape_after: Samples
    final: Samples
    groups: list[dict[str, Any]]
    by_route: dict[str, list[dict[str, Any]]]


def _wait_for_tasks(process: subprocess.Popen[bytes], port: int,
                    **expected: tuple[str, float]) -> Samples:
    def done() -> Samples | None:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}")
        samples = scrape(port)
        return samples if all(value(samples, "celery_tasks_total", task=task, state=state) >= n
                              for task, (state, n) in expected.items()) else None

    return _until(f"tasks {expected}", done)


@pytest.fixture(scope="module", params=sorted(BROKERS))
def killed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KilledRun]:
    broker = str(request.param)
    url, broker_port = BROKERS[broker]
    require_tcp("127.0.0.1", broker_port, broker)
    tmp = tmp_path_factory.mktemp(f"killed-{broker}")
    queue = f"exporter-faults-{uuid.uuid4().hex[:10]}"
    port = free_port()
    sender = make_app(url, queue, name=f"faults-sender-{broker}")
    process = start_worker(tmp, url, queue, {
        "EXPORTER_DATA_DIR": str(tmp / "data"), "EXPORTER_LOG_DIR": str(tmp / "logs"),
        "EXPORTER_CELERY_METRICS_PORT": str(port), "EXPORTER_CELERY_QUEUE_DEPTH": "false",
    })
    try:
        wait_for_scrape(process, port)
        sender.send_task("tests.reports", args=["missing-report"], queue=queue)
        sender.send_task("tests.handled", args=["missing-key"], queue=queue)
        # Done before the busy task starts: the one task running at the kill is the busy one.
        _wait_for_tasks(process, port, **{"tests.reports": ("succeeded", 1),
                                          "tests.handled": ("succeeded", 1)})
        pid_file = tmp / "busy.pid"
        sender.send_task("tests.busy", args=[str(pid_file), 300], queue=queue)
        before = _until("the busy task to run", lambda: (lambda s: s if value(
            s, "celery_tasks_in_progress", task="tests.busy") else None)(scrape(port)))
        child = int(pid_file.read_text())
        os.kill(child, signal.SIGKILL)
        _until("the killed pool process to exit", lambda: _gone(child))
        first = scrape(port)
        # The replacement pool process runs tasks, and counts them.
        sender.send_task("tests.ok", args=[1], queue=queue)
        final = _wait_for_tasks(process, port, **{
            "tests.busy": ("failed", 1), "tests.ok": ("succeeded", 1),
            "tests.reports": ("succeeded", 1), "tests.handled": ("succeeded", 1)})
        stop_worker(process)
        store = ErrorStore.in_directory(tmp / "data")
        _total, listed = store.groups()
        groups = [store.group(g["id"]) or {} for g in listed]
        store.close()
        # What `?route=` of the errors API finds, through a sidecar on the worker's data folder.
        app = create_app(load_settings(data_dir=tmp / "data", api_token=TOKEN),
                         CollectorRegistry())
        by_route = {}
        with serve_in_process(app) as client:
            for route in ("tests.busy", "tests.reports", "tests.handled"):
                answer = client.get("/api/v1/observability/errors", params={"route": route},
                                    headers={"Authorization": f"Bearer {TOKEN}"})
                assert answer.status_code == 200, answer.text
                by_route[route] = answer.json()["items"]
        yield KilledRun(before, first, final, groups, by_route)
    finally:
        stop_worker(process)
        delete_queue(broker, url, queue)


def test_a_killed_busy_pool_process_leaves_no_task_in_progress(killed: KilledRun) -> None:
    assert value(killed.before_kill, "celery_tasks_in_progress", task="tests.busy") == 1
    # The first scrape once the process has exited no longer counts its task.
    assert value(killed.first_scrape_after, "celery_tasks_in_progress") == 0
    assert value(killed.final, "celery_tasks_in_progress") == 0
    assert value(killed.final, "celery_workers") == 1
    # Its counters stay in the sum: the task started, and failed (Celery's WorkerLostError).
    assert value(killed.final, "celery_tasks_total", task="tests.busy", state="started") == 1
    assert value(killed.final, "celery_tasks_total", task="tests.busy", state="failed") == 1


def test_the_lost_task_is_one_error_group_under_its_route(killed: KilledRun) -> None:
    # Celery's own "Task handler raised error" line carries the same WorkerLostError, wrapped
    # in billiard's ExceptionWithTraceback: it is not a second group.
    assert [(g["type"], g["routes"]) for g in killed.groups if g["type"] != "KeyError"] == [
        ("billiard.exceptions.WorkerLostError", {"tests.busy": 1})]
    [found] = killed.by_route["tests.busy"]
    assert found["type"] == "billiard.exceptions.WorkerLostError" and found["count"] == 1


def test_errors_reported_inside_a_task_are_filed_under_its_route(killed: KilledRun) -> None:
    for route, logger in (("tests.reports", None), ("tests.handled", "tests.celery_app")):
        [found] = killed.by_route[route]
        assert found["type"] == "KeyError" and found["count"] == 1
        [group] = [g for g in killed.groups if g["id"] == found["id"]]
        assert group["routes"] == {route: 1}
        assert group["samples"][0]["context"].get("logger") == logger
        assert group["samples"][0]["trace_id"] is not None


def _metric_dirs(tmp: Path) -> list[Path]:
    return sorted((tmp / "tmpdir").glob("exporter-celery-metrics-*"))


def test_a_restart_by_sighup_makes_and_removes_a_directory_of_its_own(
    tmp_path: Path, queue: str,
) -> None:
    (tmp_path / "tmpdir").mkdir()
    port = free_port()
    # TMPDIR: the worker's temporary directories are made where the test sees them.
    process = start_worker(tmp_path, REDIS, queue, {
        "TMPDIR": str(tmp_path / "tmpdir"), "EXPORTER_DATA_DIR": str(tmp_path / "data"),
        "EXPORTER_LOG_DIR": str(tmp_path / "logs"), "EXPORTER_CELERY_METRICS_PORT": str(port),
        "EXPORTER_CELERY_QUEUE_DEPTH": "false",
    })
    try:
        wait_for_scrape(process, port)
        [first] = _metric_dirs(tmp_path)
        assert (first / MARKER).read_text() == str(process.pid)
        process.send_signal(signal.SIGHUP)  # Celery stops the worker and execs it again
        output = tmp_path / "worker.out"
        _until("the restarted worker", lambda: output.read_text().count("Restarting celery worker")
               == 1 and output.read_text().count(" ready.") == 2)
        wait_for_scrape(process, port)
        [second] = _metric_dirs(tmp_path)
        assert second != first and not first.exists()
        assert (second / MARKER).read_text() == str(process.pid)  # exec keeps the pid
        make_app(REDIS, queue, name="faults-sender").send_task("tests.ok", args=[1], queue=queue)
        _wait_for_tasks(process, port, **{"tests.ok": ("succeeded", 1)})
        stop_worker(process)
        assert process.returncode == 0
        assert _metric_dirs(tmp_path) == []
    finally:
        stop_worker(process)


def test_a_directory_left_over_from_a_crash_is_cleared_with_a_warning(
    tmp_path: Path, queue: str,
) -> None:
    directory = tmp_path / "metrics"
    port = free_port()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "EXPORTER_DATA_DIR": str(tmp_path / "data"),
           "EXPORTER_LOG_DIR": str(tmp_path / "logs"), "EXPORTER_CELERY_METRICS_PORT": str(port),
           "EXPORTER_CELERY_QUEUE_DEPTH": "false"}
    sender = make_app(REDIS, queue, name="faults-sender")
    crashed = start_worker(tmp_path, REDIS, queue, env, out="crashed.out", session=True)
    try:
        wait_for_scrape(crashed, port)
        sender.send_task("tests.ok", args=[1], queue=queue)
        _wait_for_tasks(crashed, port, **{"tests.ok": ("succeeded", 1)})
    finally:
        os.killpg(crashed.pid, signal.SIGKILL)  # the worker and its pool, as a crash would
        crashed.wait()
    pids = {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("*.db")}
    assert len(pids) == 3 and any(directory.glob("gauge_livesum_*.db"))
    _until("the crashed pool processes to exit", lambda: all(_gone(pid) for pid in pids))
    process = start_worker(tmp_path, REDIS, queue, env)
    try:
        samples = wait_for_scrape(process, port)
        assert value(samples, "celery_workers") == 1
        assert value(samples, "celery_tasks_total", task="tests.ok") == 0
        stop_worker(process)
    finally:
        stop_worker(process)
    [warning] = [line for line in (tmp_path / "worker.out").read_text().splitlines()
                 if "no longer run" in line]
    assert f"PROMETHEUS_MULTIPROC_DIR={directory} held the files of 3 process(es)" in warning
    assert directory.is_dir()  # the user's: kept
