"""setup_logging + enable_access_log on a user's own app, served by a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from exporter import enable_access_log, instrument, load_settings, setup_logging
from exporter.runtime import runtime_of
from tests.test_api_logs import serving


def user_app(registry: CollectorRegistry, **overrides: Any) -> FastAPI:
    settings = load_settings(**overrides)
    app = FastAPI()

    @app.get("/fast")
    async def fast() -> dict[str, str]:
        logging.getLogger("shop").info("fast called")
        return {"ok": "yes"}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(0.12)
        return {"ok": "slowly"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom with password=hunter2")

    instrument(app, settings, registry)
    return app


def lines(folder: Path, pattern: str) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob(pattern))
            for line in path.read_text().splitlines()]


def test_instrument_alone_adds_no_request_observer(registry: CollectorRegistry) -> None:
    app = user_app(registry)
    state = runtime_of(app)
    assert state is not None and state.observers == []


def test_access_slow_and_error_files_for_a_users_app(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    settings = load_settings(log_dir=tmp_path, data_dir=tmp_path / "data", log_stdout=False,
                             slow_request_seconds=0.1, service_name="shop")
    app = user_app(registry, slow_request_seconds=0.1)
    sinks = setup_logging(settings, registry)
    try:
        enable_access_log(app)
        enable_access_log(app)  # idempotent: still one line per request
        with serving(app) as client:
            fast = client.get("/fast")
            client.get("/slow")
            boom = client.get("/boom")
            assert boom.status_code == 500
        assert sinks.files.flush()
    finally:
        sinks.close()
    access = lines(tmp_path, "access_*.log")
    assert [(d["route"], d["status"]) for d in access] == [
        ("/fast", 200), ("/slow", 200), ("/boom", 500)]
    assert access[0]["trace_id"] == fast.headers["x-trace-id"]
    assert [d["route"] for d in lines(tmp_path, "slow_requests_*.log")] == ["/slow"]
    (app_line,) = [d for d in lines(tmp_path, "app_*.log") if d["logger"] == "shop"]
    assert app_line["trace_id"] == fast.headers["x-trace-id"]  # the record knows its request
    # The middleware's observer reports the exception behind the 500, with its trace id;
    # uvicorn's own "Exception in ASGI application" record is not written there a second time.
    failures = [d for d in lines(tmp_path, "errors/errors_*.jsonl")
                if d.get("exc_type") == "RuntimeError"]
    assert len(failures) == 1 and "kaboom" in failures[0]["stack"]
    assert failures[0]["trace_id"] == boom.headers["x-trace-id"]
    assert failures[0]["route"] == "/boom"
    assert {d["exc_type"] for d in lines(tmp_path, "error_*.log") if "exc_type" in d} == {
        "RuntimeError"}
    written = "".join(path.read_text() for path in tmp_path.rglob("*.*"))
    assert "hunter2" not in written


def test_access_lines_scrub_what_the_request_brings_and_honour_configured_keys(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    # The path is scrubbed once and the message made of it; the client and the trace id (an
    # X-Request-Id) come from the request too; a configured key hides a field whole.
    settings = load_settings(log_dir=tmp_path, log_stdout=False, log_redact_keys="client")
    app = FastAPI()

    @app.get("/reset/{rest}")
    async def reset(rest: str) -> dict[str, str]:
        return {"ok": "yes"}

    instrument(app, settings, registry)
    sinks = setup_logging(settings, registry)
    try:
        enable_access_log(app)
        with serving(app) as client:
            answer = client.get("/reset/password=hunter2",
                                headers={"x-request-id": "token:s3cretvalue1"})
            assert answer.status_code == 200
        assert sinks.files.flush()
    finally:
        sinks.close()
    (line,) = lines(tmp_path, "access_*.log")
    assert line["path"] == "/reset/password=[redacted]"
    assert line["message"] == "GET /reset/password=[redacted] 200"
    assert line["route"] == "/reset/{rest}" and line["method"] == "GET"
    assert line["status"] == 200 and isinstance(line["duration_ms"], float)
    # An X-Request-Id holding a secret is not taken as the trace id: a new one is made.
    assert line["trace_id"] == answer.headers["x-trace-id"] != "token:s3cretvalue1"
    assert line["client"] == "[redacted]"
    written = "".join(path.read_text() for path in tmp_path.rglob("access_*.log"))
    assert "hunter2" not in written and "s3cretvalue1" not in written


def test_calling_setup_again_replaces_the_handlers(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    settings = load_settings(log_dir=tmp_path, log_stdout=False)
    first = setup_logging(settings, registry)
    second = setup_logging(settings, registry)
    try:
        root = logging.getLogger()
        assert not any(h in root.handlers for h in first.handlers)
        assert all(h in root.handlers for h in second.handlers)
    finally:
        second.close()
    assert not any(h in logging.getLogger().handlers for h in second.handlers)


def test_a_request_whose_exception_cannot_be_printed_keeps_its_access_line(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    settings = load_settings(log_dir=tmp_path, data_dir=tmp_path / "data", log_stdout=False)
    app = user_app(registry)

    @app.get("/weird")
    async def weird() -> None:
        raise Weird()

    sinks = setup_logging(settings, registry)
    try:
        enable_access_log(app)
        with serving(app) as client:
            assert client.get("/weird").status_code == 500
        assert sinks.files.flush()
    finally:
        sinks.close()
    assert [d["path"] for d in lines(tmp_path, "access_*.log")] == ["/weird"]
    (failure,) = [d for d in lines(tmp_path, "errors/errors_*.jsonl") if d.get("path") == "/weird"]
    assert failure["exc_message"] == "<unprintable Weird>" and "raise Weird()" in failure["stack"]
    assert registry.get_sample_value("log_file_lines_dropped_total") == 0


def test_a_critical_log_level_still_lets_logged_exceptions_reach_error_capture(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    from exporter import enable_error_capture

    settings = load_settings(log_dir=tmp_path, data_dir=tmp_path / "data", log_stdout=False,
                             log_level="critical")
    app = user_app(registry)
    capture = enable_error_capture(app, settings)
    sinks = setup_logging(settings, registry)
    try:
        try:
            {}["missing"]
        except KeyError:
            logging.getLogger("shop").exception("lookup failed")
        logging.getLogger("shop").critical("still written")
        assert sinks.files.flush()
    finally:
        sinks.close()
        capture.stop()
    assert registry.get_sample_value("exceptions_total", {"exception_type": "KeyError"}) == 1
    assert [d["message"] for d in lines(tmp_path, "app_*.log")] == ["still written"]


class _CountingStream:
    """A stdout that records each write() and flush()."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        self.flushes += 1


def test_stdout_gets_every_line_in_order_in_batches_and_still_after_close(
    tmp_path: Path, registry: CollectorRegistry, monkeypatch: Any
) -> None:
    stream = _CountingStream()
    monkeypatch.setattr("sys.stdout", stream)
    settings = load_settings(log_dir=tmp_path, data_dir=tmp_path / "data", log_stdout=True)
    sinks = setup_logging(settings, registry)
    log = logging.getLogger("shop.stdout")
    try:
        for n in range(500):
            log.info("line %d", n, extra={"password": "hunter2"})
        assert sinks.files.flush()
    finally:
        sinks.close()
    try:
        log.warning("after close")  # the server's last words still show
    finally:
        if sinks.stdout is not None:
            logging.getLogger().removeHandler(sinks.stdout)
    text = "".join(stream.writes)
    assert "hunter2" not in text
    shown = [json.loads(line) for line in text.splitlines()]
    assert [d["message"] for d in shown] == [f"line {n}" for n in range(500)] + ["after close"]
    assert shown[0]["password"] == "[redacted]"
    # One write and one flush per batch of the writer thread, not per line.
    assert len(stream.writes) < 50 and stream.flushes < 50
    app_file = lines(tmp_path, "app_*.log")
    assert [d["message"] for d in app_file] == [f"line {n}" for n in range(500)]


def test_lines_made_on_the_writer_thread_show_the_moment_they_were_logged(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    from exporter.http.trace import TraceContext, _current

    settings = load_settings(log_dir=tmp_path, data_dir=tmp_path / "data", log_stdout=False)
    sinks = setup_logging(settings, registry)
    log = logging.getLogger("shop.later")
    cart = ["apple"]
    flat = {"size": 1, "token": "s3cret-value"}
    nested = {"items": ["apple"]}
    token = _current.set(TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
    try:
        log.info("cart %s", cart, extra={"flat": flat, "n": 3})
        log.info("nested", extra={"nested": nested})
    finally:
        _current.reset(token)
    cart.append("pear")  # changed after the call, before the writer thread makes the line
    flat["size"] = 2
    nested["items"].append("pear")
    log.info("outside")
    try:
        assert sinks.files.flush()
    finally:
        sinks.close()
    first, second, third = lines(tmp_path, "app_*.log")
    assert first["message"] == "cart ['apple']"
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first["span_id"] == "00f067aa0ba902b7"
    assert first["flat"] == {"size": 1, "token": "[redacted]"}
    assert first["n"] == 3
    assert second["nested"] == {"items": ["apple"]}  # not flat: formatted in the caller
    assert second["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert third["message"] == "outside" and third["trace_id"] is None


def test_uvicorn_access_is_muted_so_uvicorn_builds_no_line_for_it(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    from exporter.logs.setup import route_uvicorn_loggers

    settings = load_settings(log_dir=tmp_path, data_dir=tmp_path / "data", log_stdout=False)
    app = user_app(registry)
    sinks = setup_logging(settings, registry)
    try:
        # uvicorn asks hasHandlers() of uvicorn.access for each connection; True would make it
        # build an access line's arguments for every request, only for the logger to drop it.
        assert not logging.getLogger("uvicorn.access").hasHandlers()
        assert logging.getLogger("uvicorn.error").hasHandlers()
        enable_access_log(app)
        with serving(app) as client:
            assert client.get("/fast").status_code == 200
        assert sinks.files.flush()
        route_uvicorn_loggers(access=True)
        assert logging.getLogger("uvicorn.access").hasHandlers()
    finally:
        sinks.close()
        route_uvicorn_loggers(access=False)
    assert [d["route"] for d in lines(tmp_path, "access_*.log")] == ["/fast"]
    assert not [d for d in lines(tmp_path, "app_*.log") if d["logger"] == "uvicorn.access"]


def test_access_lines_reach_loki_with_their_labels_time_and_ids(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """The shipper of the process that wrote the access lines takes their fields from the file
    writer's hints instead of reading them: Loki gets what reading the lines would give."""
    from exporter.logs.line_fields import LineFields
    from exporter.logs.streams import Streams
    from tests.loki_receiver import running_receiver

    with running_receiver() as receiver:
        settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data",
                                 log_stdout=False, service_name="shop", environment="prod",
                                 loki_url=receiver.url, loki_batch_wait_seconds=0.05)
        app = user_app(registry)
        sinks = setup_logging(settings, registry)
        try:
            enable_access_log(app)
            with serving(app) as client:
                headers = [client.get("/fast").headers["x-trace-id"],
                           client.get("/fast", headers={"x-request-id": "token:s3cretvalue1"}
                                      ).headers["x-trace-id"],
                           client.get("/nowhere").headers["x-trace-id"]]
            assert sinks.files.flush()
            deadline = time.monotonic() + 10
            while len([e for e in receiver.entries if e[0]["kind"] == "access"]) < 3:
                assert time.monotonic() < deadline, "the access lines did not reach Loki"
                time.sleep(0.05)
            assert sinks.shipper is not None
            assert sinks.shipper.hints == {}  # every hint was taken
        finally:
            sinks.close()
    assert receiver.errors == []
    shipped = [(labels, ts, text, meta) for (labels, ts, text), meta
               in zip(receiver.entries, receiver.metadata, strict=True)
               if labels["kind"] == "access"]
    assert [json.loads(text)["trace_id"] for _l, _t, text, _m in shipped] == headers
    assert "s3cretvalue1" not in json.dumps(shipped)
    reader = LineFields(Streams(sinks.shipper.config))  # what reading each line gives
    for labels, ts, text, meta in shipped:
        read_labels, read_ts, _text, read_meta = reader.entry(text.encode(), 0, "access")
        assert (labels, ts, meta) == (dict(read_labels), read_ts, read_meta)
        assert labels == {"service": "shop", "env": "prod", "kind": "access",
                          "level": json.loads(text)["level"]}
        assert meta is not None and meta["trace_id"] == json.loads(text)["trace_id"]
