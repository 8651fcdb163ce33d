"""The scrubber on every output, end to end: the secrets and look-alikes of scrub_corpus.json
planted in headers, query strings, JSON bodies, `extra=` fields, exception messages, URLs,
`capture_exception` context and ingested entries of a real app served by uvicorn with every sink
on (daily files, stdout, Loki, the error store, Sentry), then searched for in everything that
comes out: the files, stdout, the bodies Loki received, the SQLite files' bytes, the envelopes
Sentry received, the live tail and the answers of the errors and logs APIs."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from websockets.sync.client import connect

import exporter
from exporter.app import create_app
from exporter.config import Settings, load_settings
from exporter.logs.sinks import OURS
from tests.asgi import serve_in_process, serve_in_thread
from tests.conftest import free_port, wait_for
from tests.loki_receiver import LokiReceiver
from tests.sentry_receiver import sentry_receiver

CORPUS = json.loads((Path(__file__).parent / "scrub_corpus.json").read_text())
SECRETS: list[dict[str, Any]] = CORPUS["secrets"]
BENIGN: list[dict[str, Any]] = CORPUS["benign"]
CASES = {case["id"]: case for case in SECRETS + BENIGN}
API = "/api/v1/observability"
LINES = ("files", "stdout", "loki", "tail", "logs_api_loki", "logs_api_files")
INGESTED = tuple(out for out in LINES if out != "stdout")  # stdout has the process's own lines
ERRORS = ("sqlite", "sentry", "errors_api")
# The outputs a case reaches, by where it is planted.
REACHES: dict[str, tuple[str, ...]] = {
    "header": (*LINES, "sentry"), "query": (*LINES, *ERRORS), "json": LINES, "extra": LINES,
    "exception": (*LINES, *ERRORS), "context": ERRORS, "ingest": INGESTED,
    "ingest_field": INGESTED,
}
_log = logging.getLogger("shop.corpus")
# uvicorn closes the connection of a request whose app raised: one connection per request.
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


class CorpusFailure(Exception):
    """What every planted request ends with: one error group per case (the id is in it)."""


def corpus_app(settings: Settings, registry: CollectorRegistry) -> FastAPI:
    """The sidecar (every sink, the errors, logs and tail APIs) with a route that plants a case
    as a careless service would: it logs the request whole, then fails."""
    app = create_app(settings, registry)

    @app.post("/corpus/{case_id}")
    async def corpus(case_id: str, request: Request) -> None:
        case = CASES[case_id]
        raw = await request.body()
        extra = {"headers": dict(request.headers), "body": json.loads(raw) if raw else None}
        if case["where"] == "extra":
            extra[case["name"]] = case["value"]
        _log.warning("corpus %s: %s %s", case_id, request.method, request.url, extra=extra)
        message = f"corpus case {case_id} failed for {request.url}"
        if case["where"] == "exception":
            message = f"{case['value']} (corpus case {case_id})"
            _log.error("corpus %s: %s", case_id, message)
        if case["where"] == "context":
            try:
                raise CorpusFailure(f"corpus case {case_id} reported")
            except CorpusFailure as exc:
                exporter.capture_exception(exc, **{case["name"]: case["value"]})
        raise CorpusFailure(message)

    return app


def plant(client: httpx.Client, case: dict[str, Any]) -> None:
    where, name, value, case_id = case["where"], case["name"], case["value"], case["id"]
    if where.startswith("ingest"):
        entry: dict[str, Any] = {"message": f"corpus case {case_id}"}
        if name is None:
            entry["message"] = f"{value} (corpus case {case_id})"
        elif where == "ingest_field":
            entry[name] = value
        else:
            entry["metadata"] = {name: value}
        assert client.post("/api/v1/logs/write", json=entry).status_code == 202
        return
    reply = client.post(
        f"/corpus/{case_id}",
        headers={name: value} if where == "header" else None,
        params={name: value} if where == "query" else None,
        json={name: value} if where == "json" else None,
    )
    assert reply.status_code == 500, (case_id, reply.text)


def strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    return [value]


def tail_until(ws: Any, marker: str) -> str:
    """Every line the live tail sent, up to the one holding `marker`."""
    lines: list[str] = []
    while not any(marker in line for line in lines):
        message = json.loads(ws.recv(timeout=15))
        lines += message.get("lines", [])
    return "\n".join(lines)


def logs_api(client: Any) -> str:
    return "\n".join(client.get(f"{API}{route}", params={"limit": 1000, "since": "1h"}).text
                     for route in ("/logs", "/logs/errors", "/logs/slow-requests"))


def errors_api(client: Any) -> str:
    listing = client.get(f"{API}/errors", params={"limit": 500})
    answers = [listing.text, client.get(f"{API}/errors/summary").text,
               client.get(f"{API}/errors/top").text]
    answers += [client.get(f"{API}/errors/{group['id']}").text
                for group in listing.json()["items"]]
    return "\n".join(answers)


@pytest.fixture
def loki() -> Iterator[LokiReceiver]:
    receiver = LokiReceiver(free_port()).start()
    yield receiver
    receiver.stop()
    assert receiver.errors == []


def test_no_planted_secret_reaches_any_output_and_every_look_alike_stays(
    tmp_path: Path, loki: LokiReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(SECRETS) >= 40 and len(BENIGN) >= 40
    failing = [c for c in SECRETS + BENIGN if not c["where"].startswith("ingest")]
    groups = len(failing) + sum(c["where"] == "context" for c in SECRETS + BENIGN)
    marker = f"corpus marker {uuid.uuid4().hex}"
    files = {"log_dir": tmp_path / "logs", "data_dir": tmp_path / "data",
             "service_name": "shop", "environment": "test"}
    outputs: dict[str, str] = {}
    root = logging.getLogger()
    with sentry_receiver() as sentry:
        settings = load_settings(**files, loki_url=loki.url, loki_batch_wait_seconds=0.05,
                                 sentry_dsn=sentry.dsn, sentry_events_per_second=10_000)
        try:
            with serve_in_thread(corpus_app(settings, CollectorRegistry()), lifespan="on") as url, \
                    httpx.Client(base_url=url, timeout=10, limits=NO_KEEPALIVE) as client, \
                    connect(url.replace("http", "ws") + f"{API}/logs/stream", proxy=None) as ws:
                assert json.loads(ws.recv(timeout=5))["type"] == "ready"
                for case in SECRETS + BENIGN:
                    plant(client, case)
                client.post("/api/v1/logs/write", json={"message": marker})
                outputs["tail"] = tail_until(ws, marker)
                wait_for(lambda: any(marker in line for line in loki.lines()))
                wait_for(lambda: client.get(f"{API}/errors").json()["total"] >= groups)
                sentry.wait_for_events(groups, timeout=30)
                outputs["logs_api_loki"] = logs_api(client)
                outputs["errors_api"] = errors_api(client)
        finally:
            for handler in list(root.handlers):  # what stays after the sinks close
                if getattr(handler, OURS, False):
                    root.removeHandler(handler)
        assert sentry.errors == []
        outputs["sentry"] = "\n".join(e.raw.decode() for e in sentry.envelopes)
    outputs["loki"] = "\n".join(f"{labels} {line}" for labels, _ts, line in loki.entries)
    outputs["stdout"] = capsys.readouterr().out
    by_files = load_settings(**files, log_stdout=False)
    with serve_in_process(create_app(by_files, CollectorRegistry()), lifespan=False) as client:
        outputs["logs_api_files"] = logs_api(client)
        outputs["errors_api"] += errors_api(client)
    outputs["files"] = "\n".join(p.read_bytes().decode() for p in files["log_dir"].rglob("*")
                                 if p.is_file())
    outputs["sqlite"] = b"".join(p.read_bytes() for p in files["data_dir"].glob("errors.sqlite3*")
                                 ).decode("utf-8", "replace")

    unreached = [(c["id"], out) for c in SECRETS + BENIGN for out in REACHES[c["where"]]
                 if c["id"] not in outputs[out]]
    leaks = [(c["id"], secret, out) for c in SECRETS for secret in c["secrets"]
             for out, text in outputs.items() if secret in text]
    false_positives = [(c["id"], out) for c in BENIGN for out in REACHES[c["where"]]
                       for text in strings_in(c["value"]) if text not in outputs[out]]
    print(f"\n{len(SECRETS)} secret cases ({sum(len(c['secrets']) for c in SECRETS)} secrets), "
          f"{len(BENIGN)} look-alikes, {len(outputs)} outputs: {len(leaks)} leaks, "
          f"{len(false_positives)} false positives, {len(unreached)} unreached")
    assert unreached == []
    assert leaks == []
    assert false_positives == []
