"""/logs, /logs/errors, /logs/slow-requests: local JSON files, or Loki's query_range."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from prometheus_client import CollectorRegistry

import exporter.logs.query
from exporter.app import create_app
from exporter.config import load_settings
from exporter.logs.backwards import lines_backwards
from tests.asgi import SyncClient, serve_in_process
from tests.conftest import run_sidecar

API = "/api/v1/observability"
NOW = datetime.now(timezone.utc)


@pytest.fixture(autouse=True)
def _now() -> None:
    """Each test's records are dated from when it runs (a suite can take ten minutes to get
    here, and "the last 15 minutes" must still hold the lines written 5 and 10 minutes ago)."""
    global NOW
    NOW = datetime.now(timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def record(ago: timedelta, level: str, message: str, trace: str = "0" * 32,
           **extra: Any) -> dict[str, Any]:
    return {"ts": stamp(NOW - ago), "level": level, "logger": "app.orders", "message": message,
            "service": "shop", "env": "test", "trace_id": trace, **extra}


def write(log_dir: Path, stream: str, day: datetime, records: list[Any]) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{stream}_{day.date().isoformat()}.log"
    with path.open("a") as out:
        for item in records:
            out.write((item if isinstance(item, str) else json.dumps(item)) + "\n")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[SyncClient]:
    settings = load_settings(log_dir=tmp_path, service_name="shop", environment="test")
    with serve_in_process(create_app(settings, CollectorRegistry()), lifespan=False) as client:
        yield client


def messages(reply: Any) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [r["message"] for r in reply.json()["records"]]


def test_logs_newest_first_across_days_with_filters(api: SyncClient, tmp_path: Path) -> None:
    # 30 h ago is always in an earlier day's file.
    write(tmp_path, "app", NOW - timedelta(hours=30),
          [record(timedelta(hours=30), "INFO", "old one")])
    write(tmp_path, "app", NOW, [
        record(timedelta(minutes=30), "INFO", "order 1 placed", "a" * 32),
        record(timedelta(minutes=20), "WARNING", "order 1 slow", "a" * 32),
        "{torn line",
        record(timedelta(minutes=10), "ERROR", "order 2 failed", "b" * 32),
        record(timedelta(minutes=5), "DEBUG", "tick"),
    ])
    if NOW.date() != (NOW - timedelta(minutes=30)).date():
        pytest.skip("too close to midnight UTC for this layout")
    assert messages(api.get(f"{API}/logs", params={"since": "2d"})) == [
        "tick", "order 2 failed", "order 1 slow", "order 1 placed", "old one",
    ]
    assert "old one" not in messages(api.get(f"{API}/logs"))  # the default look-back is 24 h
    assert messages(api.get(f"{API}/logs", params={"level": "WARNING"})) == [
        "order 2 failed", "order 1 slow",
    ]
    assert messages(api.get(f"{API}/logs", params={"trace_id": "a" * 32})) == [
        "order 1 slow", "order 1 placed",
    ]
    assert messages(api.get(f"{API}/logs", params={"contains": "order"}))[:1] == [
        "order 2 failed"
    ]
    assert messages(api.get(f"{API}/logs", params={"since": "15m"})) == [
        "tick", "order 2 failed",
    ]
    since = stamp(NOW - timedelta(minutes=25))
    assert messages(api.get(f"{API}/logs", params={"since": since, "limit": 2})) == [
        "tick", "order 2 failed",
    ]
    reply = api.get(f"{API}/logs", params={"limit": 1}).json()
    assert reply["source"] == "files" and reply["count"] == 1


def test_contains_finds_quotes_and_backslashes(api: SyncClient, tmp_path: Path) -> None:
    said = 'said "hi" in C:\\tmp\tthen café'
    write(tmp_path, "app", NOW, [json.dumps(  # as the formatter writes: only escapes
        record(timedelta(minutes=1), "INFO", said), ensure_ascii=False)])
    assert messages(api.get(f"{API}/logs", params={"contains": '"hi" in C:\\tmp\tthen'})) == [
        said]


def test_errors_and_slow_requests_read_their_own_files(api: SyncClient, tmp_path: Path) -> None:
    write(tmp_path, "error", NOW, [record(timedelta(minutes=1), "ERROR", "db down")])
    write(tmp_path, "slow_requests", NOW, [
        record(timedelta(minutes=2), "WARNING", "slow", method="GET", route="/items/{id}",
               path="/items/7", status=200, duration_ms=820.5, client="10.0.0.1"),
        record(timedelta(minutes=1), "WARNING", "barely", duration_ms=120.0),
    ])
    assert messages(api.get(f"{API}/logs/errors")) == ["db down"]
    (slow,) = api.get(f"{API}/logs/slow-requests").json()["records"]
    assert (slow["route"], slow["status"], slow["duration_ms"]) == ("/items/{id}", 200, 820.5)


def test_odd_lines_never_make_a_500(api: SyncClient, tmp_path: Path) -> None:
    write(tmp_path, "app", NOW, [
        '{"ts": "' + stamp(NOW) + '", "level": "INFO", "message": "nan", "x": NaN}',
        json.dumps({**record(timedelta(0), "INFO", "typed"), "status": "teapot",
                    "duration_ms": "fast", "logger": 7, "extra": {"nested": [1, 2]}}),
        "[1, 2, 3]",
        json.dumps({"level": "INFO", "message": "no timestamp"}),
    ])
    body = api.get(f"{API}/logs").json()
    by_message = {r["message"]: r for r in body["records"]}
    assert by_message["nan"]["x"] is None
    assert by_message["typed"]["status"] is None and by_message["typed"]["logger"] == "7"
    assert by_message["typed"]["extra"] == {"nested": [1, 2]}
    assert "no timestamp" not in by_message


def test_bad_filters_are_422(api: SyncClient) -> None:
    for params in ({"level": "loud"}, {"since": "yesterday"}, {"limit": 0},
                   {"since": "2026-13-45T00:00:00Z"}):
        reply = api.get(f"{API}/logs", params=params)
        assert reply.status_code == 422, params
        assert reply.json()["detail"][0]["loc"][0] == "query"


class LokiStub(BaseHTTPRequestHandler):
    """Answers query_range like Loki; records each query for the test to check."""

    seen: list[dict[str, list[str]]] = []  # noqa: RUF012 - shared with the test on purpose

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/loki/api/v1/query_range":
            self.send_error(404)
            return
        params = parse_qs(url.query, strict_parsing=True)
        LokiStub.seen.append(params)
        lines = [
            [str(int((NOW - timedelta(minutes=m)).timestamp() * 1e9)),
             json.dumps(record(timedelta(minutes=m), "ERROR", f"loki {m}"))]
            for m in (3, 1)
        ]
        body = json.dumps({"status": "success", "data": {"resultType": "streams", "result": [
            {"stream": {"service": "shop", "env": "test"}, "values": lines},
        ]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loki() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), LokiStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    LokiStub.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_loki_query_range_when_configured(loki: str, tmp_path: Path) -> None:
    settings = load_settings(log_dir=tmp_path, service_name="shop", environment="test",
                             loki_url=loki)
    with serve_in_process(create_app(settings, CollectorRegistry()), lifespan=False) as api:
        reply = api.get(f"{API}/logs/errors", params={
            "trace_id": "c" * 32, "contains": 'say "hi"', "since": "2h", "limit": 50,
        })
        assert reply.status_code == 200, reply.text
        assert reply.json()["source"] == "loki"
        assert messages(reply) == ["loki 1", "loki 3"]
        slow = api.get(f"{API}/logs/slow-requests")
    assert slow.status_code == 200
    errors_query, slow_query = LokiStub.seen
    assert sorted(errors_query) == ["direction", "end", "limit", "query", "start"]
    # The same meaning as the file search: the exact trace id, the text in the message.
    assert errors_query["query"] == [
        '{service="shop", env="test", level=~"error|critical"} |= "' + "c" * 32
        + '" |= ' + r'"say \\\"hi\\\""' + ' | json | trace_id = "' + "c" * 32
        + '" | message =~ "(?s).*say \\"hi\\".*"'
    ]
    assert errors_query["limit"] == ["50"] and errors_query["direction"] == ["backward"]
    start, end = int(errors_query["start"][0]), int(errors_query["end"][0])
    assert end - start == pytest.approx(2 * 3600 * 1e9, rel=1e-3)
    assert abs(end / 1e9 - datetime.now(timezone.utc).timestamp()) < 60
    assert slow_query["query"] == ['{service="shop", env="test"} | json | duration_ms >= 500']


def test_slow_requests_start_where_the_access_log_starts_them(loki: str, tmp_path: Path) -> None:
    settings = load_settings(log_dir=tmp_path, service_name="shop", environment="test",
                             loki_url=loki, slow_request_seconds=0.25)
    with serve_in_process(create_app(settings, CollectorRegistry()), lifespan=False) as api:
        assert api.get(f"{API}/logs/slow-requests").status_code == 200
    (query,) = LokiStub.seen
    assert query["query"] == ['{service="shop", env="test"} | json | duration_ms >= 250']


def test_logql_numbers_never_use_an_exponent_and_text_is_a_literal() -> None:
    from exporter.logs.logql import logql
    from exporter.logs.query import LogQuery

    query = LogQuery(since=NOW, until=NOW, contains="a.b (c)*", min_duration_ms=1234567.8)
    expr = logql("shop", "test", "slow_requests", query)
    assert expr.endswith('| message =~ "(?s).*a\\\\.b \\\\(c\\\\)\\\\*.*" '
                         "| duration_ms >= 1234567.8")


def test_loki_down_is_a_502_with_a_reason(tmp_path: Path) -> None:
    from tests.conftest import free_port

    settings = load_settings(log_dir=tmp_path, loki_url=f"http://127.0.0.1:{free_port()}")
    with serve_in_process(create_app(settings, CollectorRegistry()), lifespan=False) as api:
        reply = api.get(f"{API}/logs")
        assert reply.status_code == 502 and "Loki did not answer" in reply.text
        assert api.get(f"{API}/dashboard").status_code == 200


def test_a_since_before_the_retention_is_capped_not_a_500(api: SyncClient, tmp_path: Path
                                                          ) -> None:
    write(tmp_path, "app", NOW - timedelta(days=3), [record(timedelta(days=3), "INFO", "3 days")])
    reply = api.get(f"{API}/logs", params={"since": "0001-01-01T00:00:00Z"})
    assert messages(reply) == ["3 days"]


def test_since_with_a_positive_offset_reads_the_first_days_file(api: SyncClient, tmp_path: Path
                                                                ) -> None:
    moment = (NOW - timedelta(days=1)).replace(hour=10, minute=49, second=59, microsecond=0)
    write(tmp_path, "app", moment, [record(NOW - moment, "INFO", "at ten")])
    early = moment.replace(hour=9, minute=0)
    same_instant = (early + timedelta(hours=15)).strftime("%Y-%m-%dT%H:%M:%S") + "+15:00"
    for since in (stamp(early), same_instant):
        assert messages(api.get(f"{API}/logs", params={"since": since})) == ["at ten"], since


def test_errors_from_the_files_include_failed_requests_as_loki_does(
    api: SyncClient, tmp_path: Path
) -> None:
    write(tmp_path, "error", NOW, [record(timedelta(minutes=3), "ERROR", "db down")])
    write(tmp_path, "access", NOW, [
        record(timedelta(minutes=2), "error", "GET /pay 500", status=500),
        record(timedelta(minutes=1), "info", "GET /pay 200", status=200),
    ])
    assert messages(api.get(f"{API}/logs/errors")) == ["GET /pay 500", "db down"]


def test_records_written_out_of_order_still_give_the_newest(api: SyncClient, tmp_path: Path
                                                             ) -> None:
    # An ingested entry carries its own, earlier timestamp, but is appended last.
    write(tmp_path, "app", NOW, [
        record(timedelta(minutes=3), "INFO", "three minutes ago"),
        record(timedelta(minutes=2), "INFO", "two minutes ago"),
        record(timedelta(minutes=10), "INFO", "ten minutes ago, ingested late"),
    ])
    assert messages(api.get(f"{API}/logs", params={"limit": 2})) == [
        "two minutes ago", "three minutes ago"]


def _big_day_file(tmp_path: Path, lines: int) -> None:
    old = stamp(NOW - timedelta(hours=2))
    filler = "".join(
        f'{{"ts": "{old}", "level": "INFO", "logger": "app", "message": "filler {n}", '
        f'"service": "shop", "env": "test", "trace_id": null}}\n' for n in range(lines))
    (tmp_path / f"app_{NOW.date().isoformat()}.log").write_text(filler)
    write(tmp_path, "app", NOW, [record(timedelta(minutes=1), "INFO", "recent")])


def test_a_newest_first_search_stops_reading_where_the_range_ends(
    api: SyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if (NOW - timedelta(hours=2)).date() != NOW.date():
        pytest.skip("too close to midnight UTC for one day's file")
    _big_day_file(tmp_path, 200_000)
    read = {"lines": 0}  # lines the search took from the file (counted, not timed)

    def counted(path: Path) -> Iterator[str]:
        for line in lines_backwards(path):
            read["lines"] += 1
            yield line

    monkeypatch.setattr(exporter.logs.query, "lines_backwards", counted)
    assert messages(api.get(f"{API}/logs", params={"since": "15m"})) == ["recent"]
    recent, read["lines"] = read["lines"], 0
    assert messages(api.get(f"{API}/logs", params={"level": "CRITICAL"})) == []
    assert recent <= 2 and read["lines"] == 200_001, (recent, read)


def test_a_long_file_search_does_not_stall_other_requests(tmp_path: Path) -> None:
    # A real sidecar process: in this process the test's threads and the app's would share one
    # GIL, which slows /healthz as much as a blocked event loop would.
    if (NOW - timedelta(hours=2)).date() != NOW.date():
        pytest.skip("too close to midnight UTC for one day's file")
    logs = tmp_path / "logs"
    logs.mkdir()
    _big_day_file(logs, 300_000)
    ends: dict[str, float] = {}
    with run_sidecar(tmp_path) as server:
        # The first search starts the thread pool: not what is measured.
        assert httpx.get(f"{server.url}{API}/logs", params={"since": "15m"}).status_code == 200

        def search() -> None:
            reply = httpx.get(f"{server.url}{API}/logs", params={"level": "CRITICAL"},
                              timeout=60)
            assert reply.status_code == 200
            ends["search"] = time.monotonic()

        searcher = threading.Thread(target=search)
        started = time.monotonic()
        searcher.start()
        time.sleep(0.3)
        asked = time.monotonic()
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        ends["healthz"] = time.monotonic()
        searcher.join(60)
    assert ends["search"] - started > 1.0, "the search was too quick to tell"
    assert ends["healthz"] < ends["search"], ("/healthz waited for the search", started, ends)
    # Not blocked, but slowed: the search thread held the GIL and /healthz took 0.3-1.2 s,
    # 25-35 ms once the search hands it over between blocks.
    assert ends["healthz"] - asked < 0.25, ("/healthz slowed by the search", asked, ends)
