"""The runtime of an instrumented app: found on the app, its parts started and stopped with the
app's lifespan (once wrapped), in order, each failure logged, and at exit without a lifespan."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from exporter import enable_access_log, enable_error_capture, instrument, load_settings
from exporter.runtime import Runtime, runtime_of


class Recorder:
    """A part that writes what happens to it into `log`."""

    def __init__(self, name: str, log: list[str], fail: str = "", answer: object = None) -> None:
        self.name, self.log, self.fail, self.answer = name, log, fail, answer

    def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fail == "start":
            raise RuntimeError(f"{self.name} cannot start")

    def stop(self, timeout: float) -> object:
        self.log.append(f"stop {self.name} within {timeout:g}")
        if self.fail == "stop":
            raise RuntimeError(f"{self.name} cannot stop")
        return self.answer


def instrumented(registry: CollectorRegistry, **settings: object) -> tuple[FastAPI, Runtime]:
    """A fresh app, instrumented, and its runtime."""
    app = FastAPI()
    instrument(app, load_settings(**settings), registry)
    runtime = runtime_of(app)
    assert runtime is not None
    return app, runtime


def served(app: FastAPI, during: Callable[[], None] = lambda: None) -> None:
    """Run the app's lifespan: start-up, `during()`, shutdown."""

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            during()

    asyncio.run(scenario())


def test_instrument_keeps_the_runtime_on_the_app(registry: CollectorRegistry) -> None:
    app = FastAPI()
    assert runtime_of(app) is None
    instrument(app, load_settings(), registry)
    runtime = runtime_of(app)
    assert isinstance(runtime, Runtime) and app.state.exporter_runtime is runtime
    assert runtime.registry is registry and runtime.excluded == ["/metrics"]
    instrument(app, load_settings(), registry)
    assert runtime_of(app) is runtime  # instrumenting again changes nothing


def test_parts_start_in_order_around_the_apps_lifespan_and_stop_in_reverse(
    registry: CollectorRegistry,
) -> None:
    log: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.append("app starts")
        yield
        log.append("app stops")

    app = FastAPI(lifespan=lifespan)
    instrument(app, load_settings(), registry)
    runtime = runtime_of(app)
    assert runtime is not None
    for name in ("a", "b"):
        runtime.attach(name, Recorder(name, log))
    served(app, lambda: log.append("serving"))
    assert log == ["start a", "start b", "app starts", "serving", "app stops",
                   "stop b within 5", "stop a within 5"]


def test_a_part_that_fails_is_logged_and_the_others_go_on(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    app, runtime = instrumented(registry)
    runtime.attach("first", Recorder("first", log, fail="stop"))
    runtime.attach("broken", Recorder("broken", log, fail="start"))
    runtime.attach("slow", Recorder("slow", log, answer=False))  # a worker that did not end
    with caplog.at_level(logging.WARNING, "exporter.runtime"):
        served(app)
    assert log == ["start first", "start broken", "start slow",
                   "stop slow within 5", "stop broken within 5", "stop first within 5"]
    messages = [r.getMessage() for r in caplog.records if r.name == "exporter.runtime"]
    assert messages == ["broken failed to start", "slow did not stop within 5 s",
                        "first failed to stop"]


def test_an_awaitable_stop_is_awaited_within_the_deadline(registry: CollectorRegistry) -> None:
    log: list[str] = []

    class Async:
        def start(self) -> None:
            log.append("start")

        async def stop(self, timeout: float) -> None:
            await asyncio.sleep(0)
            log.append("stopped")

    class Hanging(Async):
        async def stop(self, timeout: float) -> None:
            await asyncio.sleep(60)

    app, runtime = instrumented(registry)
    runtime.stop_timeout = 0.1
    runtime.attach("async", Async())
    runtime.attach("hanging", Hanging())
    started = time.monotonic()
    served(app)
    assert time.monotonic() - started < 5, "the hanging part's stop was not cut short"
    assert log == ["start", "start", "stopped"]


def test_a_part_attached_while_the_app_serves_starts_at_once(
    registry: CollectorRegistry,
) -> None:
    log: list[str] = []
    app, runtime = instrumented(registry)
    served(app, lambda: runtime.attach("late", Recorder("late", log)))
    assert log == ["start late", "stop late within 5"]
    with pytest.raises(ValueError, match="'late' is attached already"):
        runtime.attach("late", Recorder("late", log))


def test_features_attach_parts_and_the_lifespan_is_wrapped_once(
    registry: CollectorRegistry, tmp_path: Path
) -> None:
    app = FastAPI()
    original = app.router.lifespan_context
    instrument(app, load_settings(data_dir=tmp_path), registry)
    wrapped = app.router.lifespan_context
    assert wrapped is not original
    capture = enable_error_capture(app)
    enable_access_log(app)
    assert enable_error_capture(app) is capture
    assert app.router.lifespan_context is wrapped
    runtime = runtime_of(app)
    assert runtime is not None and runtime.part("error capture") is capture
    served(app)
    assert capture.log_handler not in logging.getLogger().handlers  # stopped with the app


def test_without_a_lifespan_the_parts_stop_at_exit(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: list[Callable[[], object]] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(atexit, "unregister", lambda f: registered.__setitem__(
        slice(None), [g for g in registered if g is not f]))
    log: list[str] = []
    app, runtime = instrumented(registry)
    assert registered == []  # nothing to stop yet
    runtime.attach("a", Recorder("a", log))
    runtime.attach("b", Recorder("b", log))
    [at_exit] = registered
    at_exit()
    assert log == ["stop b within 5", "stop a within 5"] and registered == []
    served(app)
    assert registered == []  # the lifespan's stop unregisters it too


def test_with_several_workers_a_stopping_process_drops_its_live_gauges(
    registry: CollectorRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead: list[tuple[int, str]] = []
    monkeypatch.setattr("exporter.runtime.mark_process_dead",
                        lambda pid, path: dead.append((pid, path)))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    app, _ = instrumented(registry)
    served(app)
    assert dead == [(os.getpid(), str(tmp_path))]


def test_an_errors_only_observer_is_told_of_raising_requests_only(
    registry: CollectorRegistry,
) -> None:
    from tests.asgi import serve_in_process

    app = FastAPI()

    @app.get("/ok")
    def ok() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/boom")
    def boom() -> None:
        raise LookupError("boom")

    instrument(app, load_settings(), registry)
    runtime = runtime_of(app)
    assert runtime is not None
    everything: list[tuple[str, object]] = []
    raised: list[tuple[str, object]] = []
    runtime.add_observer(lambda done: everything.append((done.route, done.exception)))
    runtime.add_observer(lambda done: raised.append((done.route, type(done.exception))),
                         errors_only=True)
    with serve_in_process(app) as client:
        assert client.get("/ok").status_code == 200
        assert client.get("/boom").status_code == 500
        assert client.get("/ok").status_code == 200
    assert [route for route, _ in everything] == ["/ok", "/boom", "/ok"]
    assert raised == [("/boom", LookupError)]
