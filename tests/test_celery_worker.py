"""A real Celery worker (prefork, 2 processes) on the real Redis and RabbitMQ.

One scenario per broker: tasks are published while no worker runs (their depth is read through
the Celery integration), one request of an instrumented FastAPI app sends two of them with a
known traceparent, then a worker drains the queue and is stopped; the tests read what it left:
its /metrics, its JSON log files, the error store and what the Loki receiver got.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from exporter import instrument, load_settings
from exporter.celery import instrument_celery
from exporter.celery.queues import celery_queues
from exporter.errors.store import ErrorStore
from exporter.health.probes.queues import read_queue
from tests.asgi import serve_in_process
from tests.celery_app import make_app
from tests.celery_runner import Samples, delete_queue, scrape, stop_worker, value
from tests.conftest import free_port, require_binary, require_tcp
from tests.loki_receiver import LokiReceiver
from tests.sentry_receiver import SentryReceiver, sentry_receiver

ROOT = Path(__file__).resolve().parent.parent
BROKERS = {
    "redis": ("redis://127.0.0.1:6379/5", 6379),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
OTEL_ITEM = 2000  # the task sent from a request an OpenTelemetry span records
PLANTED_PASSWORD = "hunter2-planted-pw"
PLANTED_TOKEN = "tok-planted-9f8e7d"
# What was sent: 20 tasks succeed (1 of them sent from a request OpenTelemetry traces), 5 fail,
# 3 retry once and then succeed, 1 logs an exception.
OK, FAILING, FLAKY, HANDLED = 20, 5, 3, 1
# And 1 names a task no worker has (rejected); on Redis 1 more has expired before the worker
# receives it (revoked; RabbitMQ drops an expired message itself, Celery sets its TTL).
UNKNOWN = 1
COMPLETING = OK + FAILING + FLAKY + HANDLED


def expired(broker: str) -> int:
    """Tasks sent already expired."""
    return 1 if broker == "redis" else 0


def sent(broker: str) -> int:
    """Messages published."""
    return COMPLETING + UNKNOWN + expired(broker)


@dataclass
class Scenario:
    """What one broker's run left behind."""

    broker: str
    queue: str
    depth_before: int
    main_list_before: int | None
    final: Samples
    log_lines: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    store_bytes: bytes
    loki_lines: list[dict[str, Any]]
    output: str
    scrape_text: str
    sentry_events: list[dict[str, Any]]
    sentry_raw: bytes
    extra: dict[str, Any] = field(default_factory=dict)


def _send_from_a_traced_request(client_app: Any, queue: str) -> dict[str, Any]:
    """One task sent from a request FastAPI records a span of (OpenTelemetry's SDK): the task's
    trace is the span's."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    web = FastAPI(telemetry={"tracer_provider": provider})
    instrument(web, load_settings(), CollectorRegistry())

    @web.post("/traced")
    def traced() -> dict[str, str]:
        client_app.send_task("tests.ok", args=[OTEL_ITEM], queue=queue)
        return {"status": "sent"}

    with serve_in_process(web) as client:
        response = client.request("POST", "/traced")
        assert response.status_code == 200
    return {"otel_header": response.headers["x-trace-id"],
            "otel_traces": {format(s.context.trace_id, "032x")
                            for s in spans.get_finished_spans()}}


def _send_all(client_app: Any, queue: str, broker: str) -> dict[str, Any]:
    web = FastAPI()
    instrument(web, load_settings(), CollectorRegistry())

    @web.post("/orders")
    def create_order() -> dict[str, str]:
        client_app.send_task("tests.ok", args=[1000], queue=queue)
        client_app.send_task(
            "tests.boom", args=[1000],
            kwargs={"password": PLANTED_PASSWORD, "note": f"token={PLANTED_TOKEN}"}, queue=queue,
        )
        return {"status": "sent"}

    with serve_in_process(web) as client:
        response = client.request("POST", "/orders", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200
    extra = _send_from_a_traced_request(client_app, queue)
    for n in range(OK - 2):
        # On Redis, priority 9 goes to the sub-queue `<queue>\x06\x169`.
        options = {"priority": 9} if n < 4 and broker == "redis" else {}
        client_app.send_task("tests.ok", args=[n], queue=queue, **options)
    for n in range(FAILING - 1):
        client_app.send_task(
            "tests.boom", args=[n],
            kwargs={"password": PLANTED_PASSWORD, "note": f"token={PLANTED_TOKEN}"}, queue=queue,
        )
    for n in range(FLAKY):
        client_app.send_task("tests.flaky", args=[n], queue=queue)
    client_app.send_task("tests.handled", args=["missing-key"], queue=queue)
    if expired(broker):
        past = datetime.now(timezone.utc) - timedelta(seconds=5)
        client_app.send_task("tests.ok", args=[-1], queue=queue, expires=past)
    client_app.send_task("tests.unregistered", queue=queue)
    return extra


def _start_worker(
    tmp: Path, broker_url: str, queue: str, port: int, loki_port: int, sentry_dsn: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CELERY_TEST_BROKER": broker_url,
        "CELERY_TEST_QUEUE": queue,
        "EXPORTER_LOG_DIR": str(tmp / "logs"),
        "EXPORTER_DATA_DIR": str(tmp / "data"),
        "EXPORTER_LOKI_URL": f"http://127.0.0.1:{loki_port}",
        "EXPORTER_LOKI_BATCH_WAIT_SECONDS": "0.2",
        "EXPORTER_CELERY_METRICS_PORT": str(port),
        "EXPORTER_PROBE_INTERVAL_SECONDS": "0.2",
        "EXPORTER_SERVICE_NAME": "worker",
        "EXPORTER_SENTRY_DSN": sentry_dsn,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the instrumentation makes its own directory
    with (tmp / "worker.out").open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
             "--pool=prefork", "--concurrency=2", "-Q", queue, "--loglevel=INFO",
             "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def _wait_until_drained(
    process: subprocess.Popen[bytes], port: int, queue: str, broker: str
) -> Samples:
    deadline = time.monotonic() + 60
    samples: Samples = {}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}")
        try:
            samples = scrape(port)
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        done = value(samples, "celery_tasks_total", state="succeeded") + value(
            samples, "celery_tasks_total", state="failed")
        dropped = value(samples, "celery_tasks_total", state="revoked") + value(
            samples, "celery_tasks_total", state="rejected")
        if done >= COMPLETING and dropped >= expired(broker) + UNKNOWN and value(
                samples, "queue_up", queue=queue) == 1 and value(
                samples, "queue_depth", queue=queue) == 0:
            return samples
        time.sleep(0.2)
    raise TimeoutError(f"worker did not drain {queue}; last scrape: {samples}")


@pytest.fixture(scope="module", params=sorted(BROKERS))
def scenario(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    broker = str(request.param)
    url, port = BROKERS[broker]
    require_tcp("127.0.0.1", port, broker)
    tmp = tmp_path_factory.mktemp(broker)
    queue = f"exporter-test-{uuid.uuid4().hex[:10]}"
    client_app = make_app(url, queue, name=f"sender-{broker}")
    instrument_celery(client_app)
    loki = LokiReceiver(free_port()).start()
    try:
        with sentry_receiver() as sentry:
            yield from _run_scenario(broker, url, queue, client_app, tmp, loki, sentry)
    finally:
        delete_queue(broker, url, queue)


def _run_scenario(
    broker: str, url: str, queue: str, client_app: Any, tmp: Path, loki: LokiReceiver,
    sentry: SentryReceiver,
) -> Iterator[Scenario]:
    process = None
    try:
        extra = _send_all(client_app, queue, broker)
        targets = celery_queues(client_app)
        assert [t.queue for t in targets] == [queue]
        reading = asyncio.run(read_queue(targets[0], 5.0))
        assert reading.ok, reading.reason
        main_list = None
        if broker == "redis":
            import redis

            main_list = int(redis.Redis.from_url(url).llen(queue))
        metrics_port = free_port()
        process = _start_worker(tmp, url, queue, metrics_port, loki.port, sentry.dsn)
        final = _wait_until_drained(process, metrics_port, queue, broker)
        scrape_text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5.0).text
        stop_worker(process)
        lines = [json.loads(line) for path in sorted((tmp / "logs").glob("app_*.log"))
                 for line in path.read_text().splitlines()]
        store = ErrorStore.in_directory(tmp / "data")
        _total, groups = store.groups()
        detailed = [store.group(g["id"]) or {} for g in groups]
        store.close()
        store_bytes = b"".join(p.read_bytes() for p in (tmp / "data").glob("errors.sqlite3*"))
        loki.wait_for(1, timeout=5)
        yield Scenario(
            broker, queue, reading.depth, main_list, final, lines, detailed, store_bytes,
            [json.loads(line) for line in loki.lines()],
            (tmp / "worker.out").read_text(errors="replace"), scrape_text,
            sentry.events(), b"".join(envelope.raw for envelope in sentry.envelopes), extra,
        )
    finally:
        if process is not None:
            stop_worker(process)
        loki.stop()


def test_queue_depth_counts_the_messages_waiting_while_no_worker_runs(scenario: Scenario) -> None:
    assert scenario.depth_before == sent(scenario.broker)
    if scenario.broker == "redis":  # 4 tasks sat in the priority-9 sub-queue
        assert scenario.main_list_before == sent(scenario.broker) - 4


def test_the_worker_drains_the_queue_and_reports_its_depth(scenario: Scenario) -> None:
    labels = {"queue": scenario.queue, "backend": scenario.broker}
    assert value(scenario.final, "queue_depth", **labels) == 0
    assert value(scenario.final, "queue_exists", **labels) in (0, 1)


def test_counts_by_state_equal_what_was_sent(scenario: Scenario) -> None:
    def count(task: str, state: str) -> float:
        return value(scenario.final, "celery_tasks_total", task=task, state=state,
                     queue=scenario.queue)

    assert count("tests.ok", "received") == OK
    assert count("tests.ok", "started") == OK
    assert count("tests.ok", "succeeded") == OK
    assert count("tests.boom", "failed") == FAILING
    assert count("tests.boom", "succeeded") == 0
    assert count("tests.flaky", "retried") == FLAKY
    assert count("tests.flaky", "received") == 2 * FLAKY
    assert count("tests.flaky", "succeeded") == FLAKY
    assert count("tests.ok", "revoked") == expired(scenario.broker)
    assert count("other", "rejected") == UNKNOWN
    assert value(scenario.final, "celery_tasks_total", task="tests.unregistered") == 0
    durations = value(scenario.final, "celery_task_duration_seconds_count", task="tests.ok")
    assert durations == OK
    assert value(scenario.final, "celery_tasks_in_progress") == 0
    assert value(scenario.final, "celery_workers") == 1


def test_a_failing_task_is_grouped_in_the_error_store_without_secrets(scenario: Scenario) -> None:
    failures = [g for g in scenario.groups if g["type"] == "ValueError"]
    assert len(failures) == 1, scenario.groups
    group = failures[0]
    assert group["count"] == FAILING
    assert group["routes"] == {"tests.boom": FAILING}
    sample = group["samples"][0]
    assert sample["context"]["task"] == "tests.boom"
    assert sample["context"]["queue"] == scenario.queue
    assert sample["context"]["kwargs"]["password"] == "[Filtered]"
    traced = [s for s in group["samples"] if s["trace_id"] == TRACE_ID]
    assert len(traced) == 1 and traced[0]["context"]["args"] == [1000]
    for secret in (PLANTED_PASSWORD, PLANTED_TOKEN):
        assert secret.encode() not in scenario.store_bytes


def test_an_exception_logged_inside_a_task_is_captured(scenario: Scenario) -> None:
    # (The worker's own KeyError for the unregistered task name is a group of its own.)
    [group] = [g for g in scenario.groups if g["type"] == "KeyError"
               and g["samples"][0]["context"].get("logger") == "tests.celery_app"]
    assert group["count"] == HANDLED
    sample = group["samples"][0]
    assert sample["context"]["logger"] == "tests.celery_app"
    assert sample["context"]["log_message"] == "lookup of missing-key failed, carrying on"
    assert sample["trace_id"] is not None


def test_the_sending_requests_trace_id_is_in_the_workers_log_lines(scenario: Scenario) -> None:
    traced = [line for line in scenario.log_lines if line.get("trace_id") == TRACE_ID]
    messages = {line["message"] for line in traced}
    assert "working on item 1000" in messages
    assert "about to fail on item 1000" in messages
    # Each task run starts a trace of its own when the sender had none.
    others = [line for line in scenario.log_lines if line["message"] == "working on item 3"]
    assert len(others) == 1 and others[0]["trace_id"] not in (None, TRACE_ID)


def test_a_task_sent_under_an_opentelemetry_span_keeps_the_spans_trace(
    scenario: Scenario,
) -> None:
    (trace_id,) = scenario.extra["otel_traces"]
    assert scenario.extra["otel_header"] == trace_id
    (line,) = [x for x in scenario.log_lines if x["message"] == f"working on item {OTEL_ITEM}"]
    assert line["trace_id"] == trace_id


def test_task_log_lines_carry_task_fields_and_no_secrets(scenario: Scenario) -> None:
    line = next(x for x in scenario.log_lines if x["message"] == "working on item 1000")
    assert line["task_name"] == "tests.ok"
    assert line["queue"] == scenario.queue
    assert len(line["task_id"]) == 36
    assert line["service"] == "worker"
    failed = [x for x in scenario.log_lines
              if x.get("task_name") == "tests.boom" and x.get("exc_type") == "ValueError"]
    assert len(failed) == FAILING
    # The JSON lines on stdout are not fed back into logging by Celery's stdout redirection.
    assert [x for x in scenario.log_lines if x["logger"] == "celery.redirected"] == []
    assert '"message":"working on item 1000"' in scenario.output
    text = json.dumps(scenario.log_lines)
    assert PLANTED_PASSWORD not in text and PLANTED_TOKEN not in text


def test_worker_logs_reach_loki_with_the_trace_id_by_shutdown(scenario: Scenario) -> None:
    traced = [x for x in scenario.loki_lines if x.get("trace_id") == TRACE_ID]
    assert {x["message"] for x in traced} >= {"working on item 1000", "about to fail on item 1000"}


def test_task_failures_reach_sentry_with_the_trace_id_and_no_secrets(scenario: Scenario) -> None:
    failures = [e for e in scenario.sentry_events
                if e["exception"]["values"][-1]["type"] == "ValueError"]
    assert failures, scenario.sentry_events
    traced = [e for e in failures if e["tags"].get("trace_id") == TRACE_ID]
    assert len(traced) == 1
    # Sentry's own trace context is the task's trace too, not only the tag.
    assert traced[0]["contexts"]["trace"]["trace_id"] == TRACE_ID
    assert all(e["contexts"]["trace"]["trace_id"] == e["tags"]["trace_id"] for e in failures)
    assert traced[0]["tags"]["route"] == "tests.boom"
    assert traced[0]["contexts"]["exporter"]["task"] == "tests.boom"
    assert traced[0]["contexts"]["exporter"]["queue"] == scenario.queue
    for secret in (PLANTED_PASSWORD, PLANTED_TOKEN):
        assert secret.encode() not in scenario.sentry_raw


def test_the_workers_metrics_pass_promtool(scenario: Scenario) -> None:
    promtool = require_binary("promtool", "prometheus")
    result = subprocess.run([promtool, "check", "metrics"], input=scenario.scrape_text,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
