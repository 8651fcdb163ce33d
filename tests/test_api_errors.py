"""The errors API of the sidecar: listing, filters, summary, top, detail and status changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from exporter import create_app, load_settings
from exporter.errors.event import event_from_exception
from exporter.errors.store import ErrorStore
from tests.asgi import SyncClient, serve_in_process
from tests.conftest import run_sidecar

TOKEN = "api-token-0f1e2d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "/api/v1/observability/errors"


def _record(store: ErrorStore, kind: type[Exception], route: str, times: int = 1) -> str:
    try:
        raise kind("failed for user 7 with password=hunter2")
    except Exception as exc:
        event = event_from_exception(exc, route=route, method="GET", trace_id="cd" * 16)
    store.record([event] * times)
    return event.fingerprint


@pytest.fixture
def sidecar(tmp_path: Path, registry: CollectorRegistry) -> Iterator[tuple[SyncClient, ErrorStore]]:
    settings = load_settings(data_dir=tmp_path / "data", api_token=TOKEN)
    app = create_app(settings, registry)
    # A second connection, as another worker process would have.
    store = ErrorStore.in_directory(tmp_path / "data")
    with serve_in_process(app) as client:
        yield client, store
    store.close()


def test_the_api_needs_the_token(sidecar: tuple[SyncClient, ErrorStore]) -> None:
    client, _ = sidecar
    for path in (BASE, f"{BASE}/summary", f"{BASE}/top", f"{BASE}/abc"):
        response = client.get(path)
        assert response.status_code == 401
        assert "Bearer" in response.json()["detail"]
    assert client.patch(f"{BASE}/abc", json={"status": "resolved"}).status_code == 401


def test_list_filter_and_page(sidecar: tuple[SyncClient, ErrorStore]) -> None:
    client, store = sidecar
    key_error = _record(store, KeyError, "/a", 3)
    _record(store, ValueError, "/b")
    body = client.get(BASE, headers=AUTH).json()
    assert body["total"] == 2 and {item["type"] for item in body["items"]} == {
        "KeyError", "ValueError"}
    item = next(item for item in body["items"] if item["type"] == "KeyError")
    assert item["id"] == key_error and item["count"] == 3 and item["status"] == "unresolved"
    assert "hunter2" not in client.get(BASE, headers=AUTH).text
    assert [i["id"] for i in client.get(BASE, params={"route": "/a"}, headers=AUTH).json()[
        "items"]] == [key_error]
    assert client.get(BASE, params={"type": "ValueError"}, headers=AUTH).json()["total"] == 1
    assert client.get(BASE, params={"status": "resolved"}, headers=AUTH).json()["total"] == 0
    future = datetime(2100, 1, 1, tzinfo=timezone.utc).isoformat()
    assert client.get(BASE, params={"since": future}, headers=AUTH).json()["total"] == 0
    # Every form docs/errors.md names: epoch seconds, ISO without a zone (UTC), a date alone,
    # RFC 3339 in lower case, a look-back.
    for since in ("1700000000", "2000-01-01T00:00:00", "2000-01-01", "2000-01-01t00:00:00z",
                  "1h30m", "1d"):
        reply = client.get(BASE, params={"since": since}, headers=AUTH)
        assert reply.status_code == 200 and reply.json()["total"] == 2, since
    assert client.get(BASE, params={"since": "4102444800"}, headers=AUTH).json()["total"] == 0
    page = client.get(BASE, params={"limit": 1, "offset": 1}, headers=AUTH).json()
    assert (page["total"], len(page["items"]), page["offset"]) == (2, 1, 1)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "closed"}, "status"), ({"limit": 0}, "limit"), ({"since": "yesterday"}, "since"),
     ({"offset": -1}, "offset")],
)
def test_bad_query_values_get_422_naming_the_field(
    sidecar: tuple[SyncClient, ErrorStore], params: dict[str, object], field: str
) -> None:
    client, _ = sidecar
    response = client.get(BASE, params=params, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field
    assert "pattern" not in response.json()["detail"][0]["msg"]  # words, not a regex


def test_detail_and_status_changes(sidecar: tuple[SyncClient, ErrorStore]) -> None:
    client, store = sidecar
    group_id = _record(store, KeyError, "/a", 2)
    detail = client.get(f"{BASE}/{group_id}", headers=AUTH).json()
    assert detail["count"] == 2 and detail["routes"] == {"/a": 2}
    assert detail["samples"][0]["trace_id"] == "cd" * 16
    assert detail["samples"][0]["stack"][-1]["function"] == "_record"
    assert "hunter2" not in str(detail)
    assert len(detail["trend"]) == 24

    resolved = client.patch(f"{BASE}/{group_id}", json={"status": "resolved"}, headers=AUTH)
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    _record(store, KeyError, "/a")
    reopened = client.get(f"{BASE}/{group_id}", headers=AUTH).json()
    assert (reopened["status"], reopened["regression"], reopened["count"]) == (
        "unresolved", True, 3)

    bad = client.patch(f"{BASE}/{group_id}", json={"status": "closed"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "status"
    extra = client.patch(f"{BASE}/{group_id}", json={"status": "ignored", "x": 1}, headers=AUTH)
    assert extra.status_code == 422


def test_unknown_ids_get_404_with_a_message(sidecar: tuple[SyncClient, ErrorStore]) -> None:
    client, _ = sidecar
    response = client.get(f"{BASE}/0123456789abcdef", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"detail": "no error group with id '0123456789abcdef'"}
    patched = client.patch(f"{BASE}/nope", json={"status": "ignored"}, headers=AUTH)
    assert patched.status_code == 404 and "nope" in patched.json()["detail"]
    long = client.get(f"{BASE}/{'x' * 5000}", headers=AUTH)
    assert long.status_code == 404 and len(long.json()["detail"]) < 120  # not echoed whole


def test_the_schema_declares_what_patch_answers(sidecar: tuple[SyncClient, ErrorStore]) -> None:
    client, _ = sidecar
    responses = client.get("/openapi.json").json()["paths"][f"{BASE}/{{group_id}}"]["patch"][
        "responses"]
    assert responses["400"]["description"] == "the body is not UTF-8"
    assert {"404", "422"} <= set(responses)
    json_type = {**AUTH, "content-type": "application/json"}
    assert client.patch(f"{BASE}/x", content=b"{nope", headers=json_type).status_code == 422
    assert client.patch(f"{BASE}/x", content=b"\r\x02\xff%", headers=json_type).status_code == 400


def test_summary_and_top(sidecar: tuple[SyncClient, ErrorStore]) -> None:
    client, store = sidecar
    _record(store, KeyError, "/a", 5)
    value_error = _record(store, ValueError, "/b", 2)
    client.patch(f"{BASE}/{value_error}", json={"status": "ignored"}, headers=AUTH)
    summary = client.get(f"{BASE}/summary", headers=AUTH).json()
    assert (summary["groups"], summary["events"], summary["new_last_hour"],
            summary["events_last_hour"]) == (2, 7, 2, 7)
    assert summary["by_status"] == {"unresolved": 1, "resolved": 0, "ignored": 1}
    assert summary["trend"][-1]["count"] == 7
    top = client.get(f"{BASE}/top", params={"window_hours": 1, "limit": 1}, headers=AUTH).json()
    assert [(group["type"], group["window_count"]) for group in top] == [("KeyError", 5)]
    assert client.get(f"{BASE}/top", params={"window_hours": 0}, headers=AUTH).status_code == 422


def test_the_sidecar_serves_the_errors_api_from_its_data_dir(tmp_path: Path) -> None:
    store = ErrorStore.in_directory(tmp_path / "data")
    group_id = _record(store, KeyError, "/a", 4)  # as a worker of a previous run left it
    store.close()
    with run_sidecar(tmp_path, env={"EXPORTER_API_TOKEN": TOKEN}) as server:
        assert httpx.get(f"{server.url}{BASE}/summary").status_code == 401
        detail = httpx.get(f"{server.url}{BASE}/{group_id}", headers=AUTH).json()
        assert detail["count"] == 4


def test_a_huge_offset_is_a_422_not_a_500(sidecar: tuple[SyncClient, ErrorStore]) -> None:
    client, _store = sidecar
    reply = client.get(BASE, params={"offset": 10**30}, headers=AUTH)
    assert reply.status_code == 422
    assert "offset" in reply.text
