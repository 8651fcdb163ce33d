"""The log ingestion API and the sidecar's log set-up, with a strict Loki receiver behind it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from exporter import create_app, load_settings
from exporter.logs.sinks import active_sinks
from tests.asgi import serve_in_thread
from tests.conftest import free_port
from tests.loki_receiver import LokiReceiver

TOKEN = "api-token-for-tests"


@contextmanager
def serving(app: Any) -> Iterator[httpx.Client]:
    """Serve `app` with a real uvicorn server in a thread (lifespan included)."""
    with serve_in_thread(app, lifespan="on") as url:
        with httpx.Client(base_url=url, timeout=10) as client:
            yield client


@pytest.fixture
def receiver() -> Iterator[LokiReceiver]:
    rx = LokiReceiver(free_port()).start()
    yield rx
    rx.stop()


@pytest.fixture
def sidecar(
    tmp_path: Path, receiver: LokiReceiver, registry: CollectorRegistry
) -> Iterator[httpx.Client]:
    settings = load_settings(
        service_name="sidecar", environment="test", log_dir=tmp_path / "logs",
        data_dir=tmp_path / "data", loki_url=receiver.url, loki_batch_wait_seconds=0.05,
        log_stdout=False, slow_request_seconds=0.2, log_batch_max_entries=50,
        log_entry_max_bytes=1024,
    )
    with serving(create_app(settings, registry)) as client:
        yield client


def pushed_entry(receiver: LokiReceiver, text: str) -> tuple[dict[str, str], int, str]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for entry in list(receiver.entries):
            if text in entry[2]:
                return entry
        time.sleep(0.02)
    raise AssertionError(f"no pushed line contains {text!r}")


def flush() -> None:
    sinks = active_sinks()
    assert sinks is not None
    assert sinks.files.flush()


def file_lines(tmp_path: Path, prefix: str) -> list[dict[str, Any]]:
    flush()
    found = sorted((tmp_path / "logs").glob(f"{prefix}_*.log"))
    return [json.loads(line) for path in found for line in path.read_text().splitlines()]


def test_write_takes_one_entry_to_files_and_loki(
    sidecar: httpx.Client, tmp_path: Path, receiver: LokiReceiver
) -> None:
    reply = sidecar.post("/api/v1/logs/write", json={
        "message": "order placed", "service_name": "ads", "level": "WARN",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "adv_id": 7, "metadata": {"plan_id": "p1"},
    })
    assert reply.status_code == 202, reply.text
    (line,) = [doc for doc in file_lines(tmp_path, "app") if doc["logger"] == "exporter.ingest"]
    assert line["service"] == "ads" and line["level"] == "warning"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (line["adv_id"], line["plan_id"]) == (7, "p1")
    labels, _ts, pushed = pushed_entry(receiver, "order placed")
    assert labels == {"service": "ads", "env": "test", "level": "warning"}
    assert json.loads(pushed) == line


def test_batch_reports_each_failed_entry_by_index(sidecar: httpx.Client, tmp_path: Path) -> None:
    entries: list[Any] = [{"message": f"m{n}"} for n in range(5)]
    entries[1] = {"level": "info"}
    entries[3] = {"message": "x", "level": "loud"}
    entries[4] = {"message": "y" * 2000}
    reply = sidecar.post("/api/v1/logs/batch", json={"entries": entries})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["total"], body["success"], body["error"]) == (5, 2, 3)
    reasons = {err["index"]: err["reason"] for err in body["errors"]}
    assert reasons[1].startswith("message:")
    assert "'debug', 'info', 'warning', 'error' or 'critical'" in reasons[3]
    assert "1024 bytes" in reasons[4]
    ingested = [d for d in file_lines(tmp_path, "app") if d["logger"] == "exporter.ingest"]
    messages = [d["message"] for d in ingested]
    assert messages == ["m0", "m2"]


def test_batch_takes_the_log_entries_form_too(sidecar: httpx.Client, tmp_path: Path) -> None:
    reply = sidecar.post("/api/v1/logs/batch", json={"log_entries": [
        {"message": "from the seed client", "level": "error", "service_name": "seed"},
        {"level": "info"},
    ]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["total"], body["success"], body["error"]) == (2, 1, 1)
    assert body["errors"][0]["index"] == 1
    ingested = [d for d in file_lines(tmp_path, "app") if d["logger"] == "exporter.ingest"]
    assert [(d["message"], d["service"], d["level"]) for d in ingested] == [
        ("from the seed client", "seed", "error")]
    both = sidecar.post("/api/v1/logs/batch", json={"entries": [], "log_entries": []})
    assert both.status_code == 422 and "log_entries" in both.text


def test_bad_requests_get_clear_4xx(sidecar: httpx.Client) -> None:
    unknown = sidecar.post("/api/v1/logs/write", json={"message": "x", "level": "loud"})
    assert unknown.status_code == 422
    assert "'debug', 'info'" in unknown.text and "level" in unknown.text
    missing = sidecar.post("/api/v1/logs/write", json={"level": "info"})
    assert missing.status_code == 422 and "message" in missing.text
    huge = sidecar.post("/api/v1/logs/write", json={"message": "x" * 5000})
    assert huge.status_code == 413
    too_many = sidecar.post("/api/v1/logs/batch", json=[{"message": "x"}] * 51)
    assert too_many.status_code == 413 and "at most 50" in too_many.text
    not_json = sidecar.post("/api/v1/logs/batch", content=b"{nope")
    assert not_json.status_code == 422
    wrong_shape = sidecar.post("/api/v1/logs/batch", json={"items": []})
    assert wrong_shape.status_code == 422 and "entries" in wrong_shape.text
    old = sidecar.post("/api/v1/logs/write",
                       json={"message": "x", "timestamp": "2001-01-01T00:00:00Z"})
    assert old.status_code == 422


def test_health_reports_loki_queue_and_spool(
    sidecar: httpx.Client, receiver: LokiReceiver
) -> None:
    sidecar.post("/api/v1/logs/write", json={"message": "first"})
    pushed_entry(receiver, "first")
    health = sidecar.get("/api/v1/logs/health").json()
    assert health["status"] == "ok" and health["loki"]["reachable"] is True
    receiver.stop()
    sidecar.post("/api/v1/logs/write", json={"message": "while down"})
    sinks = active_sinks()
    assert sinks is not None and sinks.shipper is not None
    for _ in range(100):
        if sinks.shipper.spool_batches:
            break
        time.sleep(0.05)
    health = sidecar.get("/api/v1/logs/health").json()
    assert health["status"] == "degraded" and health["loki"]["reachable"] is False
    assert health["spool_bytes"] > 0 and health["spool_batches"] >= 1
    receiver.start()


def test_the_api_needs_the_bearer_token_when_one_is_set(tmp_path: Path) -> None:
    settings = load_settings(api_token=TOKEN, log_dir=tmp_path / "logs",
                             data_dir=tmp_path / "data", log_stdout=False)
    with serving(create_app(settings, CollectorRegistry())) as client:
        assert client.post("/api/v1/logs/write", json={"message": "x"}).status_code == 401
        assert client.get("/api/v1/logs/health").status_code == 401
        ok = client.post("/api/v1/logs/write", json={"message": "x"},
                         headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 202


def test_access_and_slow_request_lines_come_from_the_middleware(
    sidecar: httpx.Client, tmp_path: Path
) -> None:
    reply = sidecar.get("/api/v1/logs/health", headers={"X-Request-ID": "req-42"})
    assert reply.status_code == 200
    access = [d for d in file_lines(tmp_path, "access") if d["trace_id"] == "req-42"]
    assert len(access) == 1
    line = access[0]
    assert (line["method"], line["route"], line["path"], line["status"]) == (
        "GET", "/api/v1/logs/health", "/api/v1/logs/health", 200)
    assert line["duration_ms"] >= 0 and line["client"] == "127.0.0.1"
    for field in ("ts", "level", "logger", "message", "service", "env"):
        assert field in line
    assert not [d for d in file_lines(tmp_path, "slow_requests") if d["trace_id"] == "req-42"]


def test_app_and_error_files_get_records_from_the_root_logger(
    sidecar: httpx.Client, tmp_path: Path
) -> None:
    log = logging.getLogger("shop.checkout")
    log.info("fine")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("payment failed")
    app = [d for d in file_lines(tmp_path, "app") if d["logger"] == "shop.checkout"]
    assert [d["message"] for d in app] == ["fine", "payment failed"]
    errors = [d for d in file_lines(tmp_path, "error") if d["logger"] == "shop.checkout"]
    assert [d["message"] for d in errors] == ["payment failed"]
    (jsonl,) = (tmp_path / "logs" / "errors").glob("errors_*.jsonl")
    detail = json.loads(jsonl.read_text().splitlines()[-1])
    assert detail["exc_type"] == "ZeroDivisionError" and "1 / 0" in detail["stack"]


def test_planted_secrets_reach_no_file_and_no_pushed_line(
    sidecar: httpx.Client, tmp_path: Path, receiver: LokiReceiver
) -> None:
    secrets = ["planted-bearer-9f8e7d", "planted-password-1a2b", "planted-dsn-pw-5c6d"]
    logging.getLogger("shop.db").warning(
        "cannot reach postgres://shop:planted-dsn-pw-5c6d@db:5432/shop",
        extra={"headers": {"Authorization": "Bearer planted-bearer-9f8e7d"},
               "password": "planted-password-1a2b"},
    )
    sidecar.post("/api/v1/logs/write", json={
        "message": "login with Authorization: Bearer planted-bearer-9f8e7d",
        "metadata": {"password": "planted-password-1a2b",
                     "dsn": "redis://:planted-dsn-pw-5c6d@cache:6379/0"},
    })
    sidecar.get("/api/v1/logs/health", headers={"Authorization": "Bearer planted-bearer-9f8e7d"})
    flush()
    pushed_entry(receiver, "login with")
    pushed_entry(receiver, "cannot reach")
    written = "".join(p.read_text() for p in (tmp_path / "logs").rglob("*.log*"))
    assert "[redacted]" in written
    pushed = "\n".join(receiver.lines())
    for secret in secrets:
        assert secret not in written
        assert secret not in pushed


def test_a_lone_surrogate_in_metadata_does_not_stop_shipping(
    sidecar: httpx.Client, receiver: LokiReceiver
) -> None:
    reply = sidecar.post(
        "/api/v1/logs/write", content=b'{"message": "surrogate-meta", "note": "a\\ud800b"}',
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 202, reply.text
    sidecar.post("/api/v1/logs/write", json={"message": "after-surrogate"})
    _labels, _ts, line = pushed_entry(receiver, "surrogate-meta")
    assert json.loads(line)["note"] == "a?b"
    pushed_entry(receiver, "after-surrogate")
    health = sidecar.get("/api/v1/logs/health").json()
    assert health["worker"] == {"alive": True, "failing": False, "errors": 0, "last_error": None}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_health_is_degraded_when_the_shipper_worker_is_dead(
    tmp_path: Path, receiver: LokiReceiver, registry: CollectorRegistry
) -> None:
    from types import SimpleNamespace

    from fastapi import FastAPI

    from exporter.api.logs import logs_router
    from exporter.logs.formatter import JsonFormatter
    from exporter.logs.loki_config import LokiConfig
    from tests.asgi import request
    from tests.test_logs_loki import FailingOnce

    shipper = FailingOnce(
        LokiConfig(url=receiver.url, spool_dir=tmp_path / "spool", batch_wait=0.05), registry)
    shipper.error = SystemExit
    shipper.setFormatter(JsonFormatter())
    shipper.enqueue_line(time.time(), "info", '{"message": "kills it"}')
    deadline = time.monotonic() + 5
    while shipper.worker_alive:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    app = FastAPI()
    app.include_router(logs_router(load_settings(), lambda: SimpleNamespace(shipper=shipper)))
    health = request(app, "GET", "/api/v1/logs/health").json()
    assert health["status"] == "degraded" and health["worker"]["alive"] is False
    shipper.close()


def test_health_is_degraded_while_loki_rejects_every_batch(
    tmp_path: Path, receiver: LokiReceiver, registry: CollectorRegistry
) -> None:
    # A wrong path prefix: the receiver answers 404, as a Loki behind a proxy answers 401 to
    # wrong credentials; the batches are dropped, so health must not say ok.
    settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data",
                             loki_url=receiver.url + "/wrong-prefix", log_stdout=False,
                             loki_batch_wait_seconds=0.05)
    with serving(create_app(settings, registry)) as client:
        client.post("/api/v1/logs/write", json={"message": "refused"})
        deadline = time.monotonic() + 5
        while not registry.get_sample_value(
                "loki_shipper_lines_dropped_total", {"reason": "rejected"}):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        health = client.get("/api/v1/logs/health").json()
    assert health["status"] == "degraded"
    assert health["loki"]["reachable"] is True and health["loki"]["last_status"] == 404
    assert health["reasons"] == ["Loki rejected the last batch with HTTP 404; it was dropped"]


def test_health_without_loki_has_the_same_keys(tmp_path: Path, registry: CollectorRegistry
                                                ) -> None:
    settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data",
                             log_stdout=False)
    with serving(create_app(settings, registry)) as client:
        health = client.get("/api/v1/logs/health").json()
    assert health["status"] == "ok" and health["loki"] == {"configured": False}
    assert {"queue_capacity", "spool_max_bytes", "reasons", "worker"} <= set(health)


def test_the_whole_body_and_line_are_bounded_on_both_routes(
    sidecar: httpx.Client, tmp_path: Path
) -> None:
    # The fixture allows 1024-byte messages: a line may hold 16 KiB more, a /write body 4x that.
    blob = {"message": "bigmeta", "blob": "x" * 6_000_000}
    huge = sidecar.post("/api/v1/logs/write", json=blob)
    assert huge.status_code == 413 and "body larger than" in huge.json()["detail"]
    line = sidecar.post("/api/v1/logs/write", json={"message": "wide", "blob": "y" * 20_000})
    assert line.status_code == 413 and "line is longer than 17408 bytes" in line.json()["detail"]
    batch = sidecar.post("/api/v1/logs/batch", json=[
        {"message": "fine"}, {"message": "wide", "blob": "y" * 20_000}])
    assert batch.status_code == 200
    assert batch.json()["errors"] == [
        {"index": 1, "reason": "entry: its line is longer than 17408 bytes (the message may "
                               "take 1024, everything else 16384)"}]
    whole = sidecar.post("/api/v1/logs/batch", json=[{"message": "z" * 1000}] * 50 + [
        {"message": "over", "blob": "w" * 1_000_000}])
    assert whole.status_code == 413 and "body larger than" in whole.json()["detail"]
    ingested = [d for d in file_lines(tmp_path, "app") if d["logger"] == "exporter.ingest"]
    assert [d["message"] for d in ingested] == ["fine"]


def test_the_token_is_checked_before_the_body_is_read(tmp_path: Path) -> None:
    settings = load_settings(api_token=TOKEN, log_dir=tmp_path / "logs",
                             data_dir=tmp_path / "data", log_stdout=False)
    with serving(create_app(settings, CollectorRegistry())) as client:
        for route in ("/api/v1/logs/write", "/api/v1/logs/batch"):
            torn = client.post(route, content=b'{"message":',
                               headers={"content-type": "application/json"})
            assert torn.status_code == 401, route  # not 422: the body is never parsed
        big = client.post("/api/v1/logs/write", content=b"x" * 20_000_000)
        assert big.status_code == 401


def test_bodies_that_made_500s_get_the_same_422_on_both_routes(sidecar: httpx.Client) -> None:
    json_type = {"content-type": "application/json"}
    deep = b"[" * 30_000 + b"]" * 30_000  # deeper than Python's recursion limit
    deep_entry = b'{"message": "m", "meta": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    surrogate = b'{"message": "a\\ud800b"}'
    not_utf8 = b'{"message": "\xff\xfe"}'
    for body in (deep, deep_entry, not_utf8):
        for route in ("/api/v1/logs/write", "/api/v1/logs/batch"):
            reply = sidecar.post(route, content=body, headers=json_type)
            assert reply.status_code == 422, (route, body[:30], reply.text[:200])
            (error,) = reply.json()["detail"]
            assert error["loc"][0] == "body" and "input" not in error
    reply = sidecar.post("/api/v1/logs/write", content=surrogate, headers=json_type)
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "message"]
    in_batch = sidecar.post("/api/v1/logs/batch", content=b"[" + surrogate + b"]",
                            headers=json_type)
    assert in_batch.status_code == 200 and in_batch.json()["errors"][0]["reason"].startswith(
        "message:")


def test_a_large_batch_does_not_stall_other_requests(tmp_path: Path) -> None:
    import threading

    settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data",
                             log_stdout=False)
    # Every pair is a secret to scrub: each entry costs the worker real CPU.
    entries = [{"message": "password=p " * 4000, "n": n} for n in range(1000)]
    with serving(create_app(settings, CollectorRegistry())) as client:
        ends: dict[str, float] = {}

        def send_batch() -> None:
            reply = client.post("/api/v1/logs/batch", json=entries, timeout=120)
            assert reply.status_code == 200 and reply.json()["success"] == 1000
            ends["batch"] = time.monotonic()

        sender = threading.Thread(target=send_batch)
        started = time.monotonic()
        sender.start()
        time.sleep(0.5)  # the batch is being taken
        assert client.get("/healthz").status_code == 200
        ends["healthz"] = time.monotonic()
        sender.join(120)
    assert ends["batch"] - started > 2.0, "the batch was too quick to tell"
    assert ends["healthz"] < ends["batch"] - 1.0, "/healthz waited for the batch"


def test_a_slow_loki_holds_up_no_batch_and_loses_nothing(
    tmp_path: Path, receiver: LokiReceiver, registry: CollectorRegistry
) -> None:
    # Loki answers each push after 2 s, 10 lines a batch: the shipper falls behind, and the
    # daily files hold what it has not pushed yet, so the API has nothing to refuse.
    settings = load_settings(
        service_name="sidecar", environment="test", log_dir=tmp_path / "logs",
        data_dir=tmp_path / "data", loki_url=receiver.url, loki_batch_wait_seconds=0.05,
        loki_batch_lines=10, log_stdout=False, log_batch_max_entries=100,
    )
    receiver.delay = 2.0
    with serving(create_app(settings, registry)) as client:
        for name in ("first", "second", "third"):
            reply = client.post("/api/v1/logs/batch",
                                json=[{"message": f"{name} {n}"} for n in range(80)])
            assert reply.status_code == 200 and reply.json()["success"] == 80
        health = client.get("/api/v1/logs/health").json()
        assert health["spool_bytes"] > 0  # the bytes of the files Loki does not have yet
        receiver.delay = 0.0
        wanted = {f"{name} {n}" for name in ("first", "second", "third") for n in range(80)}
        assert receiver.wait_for(240)
        scrape = client.get("/metrics").text
    shipped = {json.loads(line)["message"] for line in receiver.lines()
               if '"exporter.ingest"' in line}
    assert shipped == wanted
    assert 'loki_shipper_lines_dropped_total{reason="queue_full"} 0.0' in scrape
