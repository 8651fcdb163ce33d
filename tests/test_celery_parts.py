"""The Celery integration's parts that need no worker: queue targets, labels, trace headers."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from kombu import Queue
from prometheus_client import CollectorRegistry

from exporter.celery.context import (
    TaskLogFilter,
    enter_task,
    inject_trace,
    leave_task,
    trace_of,
)
from exporter.celery.metrics import OTHER, BoundedLabel, CeleryMetrics
from exporter.celery.queues import celery_queues, queue_names, queue_url
from exporter.http.trace import TraceContext, _current, current_trace_id
from exporter.logs.formatter import JsonFormatter
from exporter.metric_files import MARKER


def test_default_queue_is_read_when_no_task_queues_are_declared() -> None:
    app = Celery("t", broker="redis://:s3cret@127.0.0.1:6379/5")
    [target] = celery_queues(app)
    assert (target.backend, target.queue) == ("redis", "celery")
    assert target.url == "redis://:s3cret@127.0.0.1:6379/5"
    assert "s3cret" not in target.safe_url


def test_declared_task_queues_are_listed_once() -> None:
    app = Celery("t", broker="pyamqp://guest:guest@127.0.0.1:5672//")
    app.conf.task_queues = [Queue("high"), Queue("medium"), Queue("low"), Queue("high")]
    assert queue_names(app) == ["high", "medium", "low"]
    targets = celery_queues(app)
    assert [(t.backend, t.queue, t.vhost) for t in targets] == [
        ("rabbitmq", "high", "/"), ("rabbitmq", "medium", "/"), ("rabbitmq", "low", "/")]
    assert targets[0].url == "amqp://guest:guest@127.0.0.1:5672/%2F"


def test_broker_urls_become_probe_urls() -> None:
    assert queue_url("redis://127.0.0.1:6379", "q") == "redis://127.0.0.1:6379/0/q"
    assert queue_url("rediss://h:6380/3", "a b") == "rediss://h:6380/3/a%20b"
    assert queue_url("amqp://u:p@h:5672/shop", "q") == "amqp://u:p@h:5672/shop/q"
    assert queue_url("amqp://u:p@h:5672", "q") == "amqp://u:p@h:5672/%2F/q"
    assert queue_url("sqs://", "q") is None


def test_an_unsupported_transport_reads_no_queue() -> None:
    assert celery_queues(Celery("t", broker="sqs://")) == []


def test_task_names_past_the_cap_share_other() -> None:
    label = BoundedLabel(3, seed=["a", "b"])
    assert [label.value(v) for v in ("a", "c", "d", "b", "c")] == ["a", "c", OTHER, "b", "c"]
    assert label.value(None) == "unknown"


def test_counts_use_the_bounded_labels(registry: CollectorRegistry) -> None:
    metrics = CeleryMetrics(registry, max_task_names=2, task_names=["tasks.a"])
    for name in ("tasks.a", "tasks.b", "tasks.c", "tasks.d"):
        metrics.count(name, "q", "received")
    def total(task: str) -> float | None:
        return registry.get_sample_value(
            "celery_tasks_total", {"task": task, "queue": "q", "state": "received"})
    assert total("tasks.a") is None  # gathered in memory until the flush
    metrics.flush()
    assert (total("tasks.a"), total("tasks.b"), total(OTHER)) == (1.0, 1.0, 2.0)
    assert total("tasks.c") is None


def test_a_flush_writes_each_task_once_with_its_duration_and_the_running_ones(
    registry: CollectorRegistry,
) -> None:
    metrics = CeleryMetrics(registry, max_task_names=5, task_names=["tasks.a"])
    labels = metrics.labels("tasks.a", "q")
    for _ in range(3):
        metrics.started(labels)
    metrics.finished(labels, 0.003, succeeded=True)
    metrics.finished(labels, 0.7, succeeded=False)
    metrics.count("tasks.a", "q", "failed")
    metrics.flush()
    metrics.flush()  # nothing new: nothing added twice

    def sample(name: str, **extra: str) -> float | None:
        return registry.get_sample_value(name, {"task": "tasks.a", "queue": "q", **extra})

    assert [sample("celery_tasks_total", state=s) for s in ("started", "succeeded", "failed")] \
        == [3.0, 1.0, 1.0]
    assert sample("celery_tasks_in_progress") == 1.0
    assert sample("celery_task_duration_seconds_count") == 2.0
    assert sample("celery_task_duration_seconds_sum") == pytest.approx(0.703)
    assert sample("celery_task_duration_seconds_bucket", le="0.005") == 1.0
    assert sample("celery_task_duration_seconds_bucket", le="0.5") == 1.0
    assert sample("celery_task_duration_seconds_bucket", le="1.0") == 2.0
    metrics.finished(labels, 0.01, succeeded=True)
    metrics.flush()
    assert sample("celery_tasks_in_progress") == 0.0
    assert sample("celery_tasks_total", state="succeeded") == 2.0


def test_a_forked_pool_process_does_not_write_its_parents_gathered_counts(
    registry: CollectorRegistry,
) -> None:
    metrics = CeleryMetrics(registry, max_task_names=5, task_names=["tasks.a"])
    metrics.count("tasks.a", "q", "received")
    metrics.flush()
    for _ in range(3):
        metrics.count("tasks.a", "q", "received")  # gathered, not yet written, at the fork

    def total() -> float | None:
        return registry.get_sample_value(
            "celery_tasks_total", {"task": "tasks.a", "queue": "q", "state": "received"})

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's 3 are not its own
        try:
            signal.alarm(10)  # a lock left held across the fork would hang it: die instead
            metrics.count("tasks.a", "q", "received")
            metrics.flush()
            grandchild = os.fork()  # a pool process may fork too (a task's own processes)
            if grandchild == 0:
                os._exit(0)
            os.waitpid(grandchild, 0)
            metrics.flush()
            os.write(write, str(total()).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        assert pipe.read() == "2.0"  # 1 inherited from the files' copy + its own 1
    metrics.flush()
    assert total() == 4.0


def test_the_current_trace_goes_into_the_task_headers() -> None:
    token = _current.set(TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
    try:
        headers: dict[str, object] = {}
        inject_trace(headers)
        assert headers == {
            "x-trace-id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        }
        kept = {"traceparent": "00-11111111111111111111111111111111-2222222222222222-01"}
        inject_trace(kept)
        assert list(kept) == ["traceparent"]
    finally:
        _current.reset(token)


def test_a_request_id_travels_in_x_trace_id_only() -> None:
    token = _current.set(TraceContext("order-42", "00f067aa0ba902b7", None, "x-request-id"))
    try:
        headers: dict[str, object] = {}
        inject_trace(headers)
        assert headers == {"x-trace-id": "order-42"}
    finally:
        _current.reset(token)


def test_no_trace_no_headers() -> None:
    headers: dict[str, object] = {}
    inject_trace(headers)
    assert headers == {}


class _Request:
    def __init__(self, **attrs: object) -> None:
        self.__dict__.update(attrs)


def test_the_worker_continues_the_senders_trace() -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    trace = trace_of(_Request(traceparent=parent))
    assert (trace.trace_id, trace.parent_span_id) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert trace_of(_Request(headers={"x-trace-id": "order-42"})).trace_id == "order-42"
    fresh = trace_of(_Request(traceparent="garbage"))
    assert fresh.source == "generated" and len(fresh.trace_id) == 32


def test_log_records_in_a_task_carry_its_fields_and_scrubbed_arguments() -> None:
    request = _Request(id="abc-1", traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-"
                       "00f067aa0ba902b7-01")
    scope = enter_task(request, "tasks.charge", "payments")
    try:
        assert current_trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736"
        record = logging.LogRecord("celery.app.trace", logging.ERROR, "", 0, "failed", None, None)
        record.data = {"id": "abc-1", "kwargs": "{'password': 'pw-123456', 'n': 1}", "args": "[]"}
        assert TaskLogFilter().filter(record)
        assert record.task_id == "abc-1"
        assert record.task_name == "tasks.charge"
        assert record.queue == "payments"
        line = json.loads(JsonFormatter().format(record))
        assert "pw-123456" not in line["data"]["kwargs"]
        assert line["data"]["kwargs"] == "{'password': '[redacted]', 'n': 1}"
        assert (line["data"]["id"], line["task_id"], line["queue"]) == (
            "abc-1", "abc-1", "payments")
    finally:
        leave_task(scope)
    assert current_trace_id() is None
    outside = logging.LogRecord("x", logging.INFO, "", 0, "m", None, None)
    TaskLogFilter().filter(outside)
    assert not hasattr(outside, "task_id")


def test_a_handler_that_fails_never_fails_the_task_and_says_so_once(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    from exporter.celery.signals import TaskSignals

    signals = TaskSignals(CeleryMetrics(registry, 5), None)
    with caplog.at_level(logging.WARNING, logger="exporter.celery"):
        for _ in range(3):
            signals.on_prerun(sender=object(), task_id="t-1")  # no .request: AttributeError
            signals.on_received(request=None)  # no name, no delivery info: counted as unknown
    warnings = [r.getMessage() for r in caplog.records if "on_prerun failed" in r.getMessage()]
    assert len(warnings) == 1 and "AttributeError" in warnings[0]
    metrics = signals.metrics
    metrics.flush()
    assert registry.get_sample_value(
        "celery_tasks_total", {"task": "unknown", "queue": "unknown", "state": "received"}) == 3.0


class _FakeTask:
    def __init__(self, name: str, tracer: Any) -> None:
        self.name = name
        self.__trace__ = tracer


def test_wrapped_tracers_count_and_carry_the_trace_without_signals(
    registry: CollectorRegistry,
) -> None:
    from exporter.celery.context import current_task_fields
    from exporter.celery.signals import TaskSignals

    seen: list[object] = []

    def ok_tracer(uuid: str, args: Any, kwargs: Any, request: Any = None) -> tuple[Any, ...]:
        seen.append((current_trace_id(), current_task_fields()))
        return (1, None, 0.001, "1")  # Celery's (retval, info, runtime, repr): info None = ok

    def failing_tracer(uuid: str, args: Any, kwargs: Any, request: Any = None) -> tuple[Any, ...]:
        return (ValueError("x"), object(), None, None)

    metrics = CeleryMetrics(registry, 5, ["t.ok", "t.fails"])
    signals = TaskSignals(metrics, None)
    tasks = {"t.ok": _FakeTask("t.ok", ok_tracer), "t.fails": _FakeTask("t.fails", failing_tracer)}
    assert signals.wrap_tracers(tasks)
    assert signals.wrap_tracers(tasks)  # idempotent: not wrapped twice
    request = {"delivery_info": {"routing_key": "q"},
               "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    assert tasks["t.ok"].__trace__("id-1", (), {}, request) == (1, None, 0.001, "1")
    tasks["t.fails"].__trace__("id-2", (), {}, {"delivery_info": {"routing_key": "q"}})
    assert seen == [("4bf92f3577b34da6a3ce929d0e0e4736", ("id-1", "t.ok", "q"))]
    assert current_trace_id() is None and current_task_fields() is None  # left as found
    metrics.flush()

    def sample(name: str, task: str, **extra: str) -> float | None:
        return registry.get_sample_value(name, {"task": task, "queue": "q", **extra})

    assert sample("celery_tasks_total", "t.ok", state="started") == 1.0
    assert sample("celery_tasks_total", "t.ok", state="succeeded") == 1.0
    assert sample("celery_tasks_total", "t.fails", state="started") == 1.0
    assert sample("celery_tasks_total", "t.fails", state="succeeded") is None
    assert not sample("celery_tasks_in_progress", "t.fails")  # none left running
    assert sample("celery_task_duration_seconds_count", "t.ok") == 1.0


def test_tracers_are_wrapped_all_or_nothing(registry: CollectorRegistry) -> None:
    from exporter.celery.signals import TaskSignals

    def tracer(*args: Any) -> None:
        return None

    ready, missing = _FakeTask("t.a", tracer), _FakeTask("t.b", None)
    signals = TaskSignals(CeleryMetrics(registry, 5), None)
    assert not signals.wrap_tracers({"t.a": ready, "t.b": missing})
    assert ready.__trace__ is tracer  # the signal handlers keep doing the work


_DIRECTORY_SCRIPT = """
import json, os
from exporter.celery.directory import enable_multiprocess, release
made = enable_multiprocess()
seen = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
release(made)
print(json.dumps([made.path, made.made, seen, os.path.exists(made.path),
                  os.environ.get("PROMETHEUS_MULTIPROC_DIR")]))
"""


def _worker_directory(tmp: Path, inherited: str | None) -> list[Any]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if inherited is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = inherited
    out = subprocess.run([sys.executable, "-c", _DIRECTORY_SCRIPT], env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    result: list[Any] = json.loads(out)
    return result


def test_a_worker_makes_its_own_directory_and_removes_it_when_it_stops(tmp_path: Path) -> None:
    path, made, seen, exists_after, env_after = _worker_directory(tmp_path, None)
    assert made and seen == path and Path(path).parent == tmp_path
    assert not exists_after and env_after is None  # a restart by exec makes a new one


def test_an_inherited_directory_the_kit_made_is_never_taken_for_the_users(
    tmp_path: Path,
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for maker, kept in ((dead.pid, False), (os.getpid(), True)):
        inherited = tmp_path / f"exporter-celery-metrics-{maker}"
        inherited.mkdir()
        (inherited / MARKER).write_text(str(maker))
        (inherited / f"counter_{maker}.db").write_bytes(b"")
        path, made, _seen, exists_after, _env = _worker_directory(tmp_path, str(inherited))
        assert made and path != str(inherited) and not exists_after
        # Its maker's, while it runs; a leftover once it does not.
        assert inherited.exists() is kept


def test_the_users_directory_is_kept(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    path, made, seen, exists_after, env_after = _worker_directory(tmp_path, str(mine))
    assert (path, made, seen, exists_after, env_after) == (str(mine), False, str(mine), True,
                                                           str(mine))


def test_directories_of_workers_killed_outright_are_removed_by_the_next_one(
    tmp_path: Path,
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for maker in (dead.pid, os.getpid()):
        directory = tmp_path / f"exporter-celery-metrics-{maker}"
        directory.mkdir()
        (directory / MARKER).write_text(str(maker))
    (tmp_path / "exporter-celery-metrics-users").mkdir()  # no marker: not the kit's
    _worker_directory(tmp_path, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"exporter-celery-metrics-{os.getpid()}", "exporter-celery-metrics-users"]
