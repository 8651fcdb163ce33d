"""Authorise and bound before reading: every route with a body checks the token, then its
`Content-Length`, before a byte of the body is read, and stops a chunked body past its cap.

The memory figures come from a real `exporter serve` process (VmRSS/VmHWM in /proc); how fast
the answers come is printed here and measured in bench/body_guard.py, never asserted.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.config import SettingsError, load_settings
from tests.asgi import request
from tests.conftest import RunningServer, run_sidecar
from tests.raw_http import MIB, Answer, at_once, upload

TOKEN = "bounded-token-0d5e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
WEBHOOK = ("POST", "/api/v1/observability/alerts/webhook")
PATCH = ("PATCH", "/api/v1/observability/errors/" + "ab" * 16)
DEMO = ("PUT", "/demo/config")
BATCH = ("POST", "/api/v1/logs/batch")
WRITE = ("POST", "/api/v1/logs/write")
PROTECTED = (WEBHOOK, PATCH, BATCH, WRITE)
HUGE = 100 * MIB


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("bounded")
    env = {"EXPORTER_API_TOKEN": TOKEN, "EXPORTER_DEMO": "true", "EXPORTER_DEMO_RATE": "0",
           "EXPORTER_LOG_STDOUT": "false"}
    with run_sidecar(tmp, env=env) as server:
        yield server


def _at_once(server: RunningServer, calls: list[tuple[tuple[str, str], dict[str, object]]]
             ) -> tuple[list[Answer], int]:
    """The answers to `calls` sent at once, and the server's peak RSS growth meanwhile."""
    return at_once(server.process.pid,
                   lambda call: upload(server.url, *call[0], **call[1]),  # type: ignore[arg-type]
                   calls)


def _report(what: str, answers: list[Answer], growth: int) -> None:
    ms = sorted(answer.seconds * 1000 for answer in answers)
    print(f"{what}: {len(answers)} answers, median {statistics.median(ms):.0f} ms, "
          f"slowest {ms[-1]:.0f} ms; peak RSS growth {growth / MIB:.1f} MiB")


def _warm_up(server: RunningServer) -> None:
    # The first answer of each kind imports and caches what later ones reuse.
    for method, path in (WEBHOOK, PATCH, DEMO, BATCH, WRITE):
        upload(server.url, method, path, 10)
        upload(server.url, method, path, 10 * MIB, headers=AUTH)
        upload(server.url, method, path, 10, headers=AUTH, chunked=True, filler=b"x")


def test_ten_100_mb_bodies_without_a_token_are_refused_unread(sidecar: RunningServer) -> None:
    _warm_up(sidecar)
    routes = [WEBHOOK, PATCH, DEMO, BATCH, WRITE] * 2
    answers, growth = _at_once(sidecar, [(route, {"size": HUGE}) for route in routes])
    _report("10 x 100 MB, no token, Content-Length", answers, growth)
    for route, answer in zip(routes, answers, strict=True):
        if route == DEMO:  # the demo needs no token: its cap answers
            assert answer.status == 413, answer
            assert b"EXPORTER_API_BODY_MAX_BYTES" in answer.body
        else:
            assert answer.status == 401, (route, answer)
            assert json.loads(answer.body)["detail"]
    assert growth < 20 * MIB

    answers, growth = _at_once(
        sidecar, [(route, {"size": HUGE, "chunked": True}) for route in routes])
    _report("10 x 100 MB, no token, chunked", answers, growth)
    assert [a.status for a in answers] == [413 if r == DEMO else 401 for r in routes]
    assert growth < 20 * MIB


def test_bodies_over_the_cap_are_refused_before_they_are_read(sidecar: RunningServer) -> None:
    _warm_up(sidecar)
    routes = [WEBHOOK, PATCH, DEMO, BATCH, WRITE] * 2
    answers, growth = _at_once(
        sidecar, [(route, {"size": HUGE, "headers": AUTH}) for route in routes])
    _report("10 x 100 MB, token, Content-Length", answers, growth)
    assert [a.status for a in answers] == [413] * len(routes)
    for answer in answers:
        assert b"body larger than" in answer.body
    assert growth < 20 * MIB

    # Chunked, no length declared: read up to the cap (the log routes' caps are tens of MB:
    # their memory is bounded apart, see test_api_logs_memory.py).
    routes = [WEBHOOK, PATCH, DEMO] * 3
    answers, growth = _at_once(
        sidecar, [(route, {"size": HUGE, "headers": AUTH, "chunked": True}) for route in routes])
    _report("9 x 100 MB, token, chunked", answers, growth)
    assert [a.status for a in answers] == [413] * len(routes)
    assert b"EXPORTER_ALERT_WEBHOOK_MAX_BYTES" in answers[0].body
    assert b"EXPORTER_API_BODY_MAX_BYTES" in answers[1].body
    assert growth < 20 * MIB + 3 * 4 * MIB  # three webhook bodies may reach their 4 MiB cap


def test_the_caps_are_settings_and_small_bodies_pass(tmp_path: Path) -> None:
    settings = load_settings(log_dir=tmp_path, environment="test", api_token=TOKEN, demo=True,
                             demo_rate=0, api_body_max_bytes=1024)
    app = create_app(settings, CollectorRegistry())
    body = json.dumps({"error_ratio": 0.5})
    changed = request(app, "PUT", "/demo/config", content=body, headers=JSON)
    assert changed.json()["error_ratio"] == 0.5
    big = json.dumps({"error_ratio": 0.5, "pad": " " * 1024})
    reply = request(app, "PUT", "/demo/config", content=big, headers=JSON)
    assert reply.status_code == 413
    assert reply.json() == {
        "detail": "body larger than 1024 bytes (the cap is EXPORTER_API_BODY_MAX_BYTES)"}
    # The token before the size: without it, a 401 whatever the size.
    assert request(app, "PATCH", PATCH[1], content=big, headers=JSON).status_code == 401
    assert request(app, "PATCH", PATCH[1], content=big, headers={**AUTH, **JSON}).status_code == 413
    assert request(app, "PATCH", PATCH[1], json={"status": "resolved"},
                   headers=AUTH).status_code == 404  # read, validated, and no such group
    spec = request(app, "GET", "/openapi.json").json()
    for method, path in (WEBHOOK, PATCH, DEMO):
        template = path.replace("ab" * 16, "{group_id}")
        assert "413" in spec["paths"][template][method.lower()]["responses"], path
    for name, variable in (("api_body_max_bytes", "EXPORTER_API_BODY_MAX_BYTES"),
                           ("alert_webhook_max_bytes", "EXPORTER_ALERT_WEBHOOK_MAX_BYTES")):
        with pytest.raises(SettingsError, match=variable):
            load_settings(**{name: 10})
