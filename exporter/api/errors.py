"""`/api/v1/observability/errors`: error groups from the local store, and their status."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from exporter.api.bounded import TOO_LARGE_REPLY, bounded_route
from exporter.api.validation import ErrorReply, Since, protected, since_time
from exporter.config import Settings, env_name
from exporter.errors.store import ErrorStore

StatusName = Literal["unresolved", "resolved", "ignored"]


class ErrorGroup(BaseModel):
    """One group of occurrences that share a fingerprint."""

    id: str = Field(description="the fingerprint; also the Sentry fingerprint")
    type: str
    message: str = Field(description="the latest occurrence's message, scrubbed")
    culprit: str = Field(description="module:function of the innermost in-app frame")
    status: StatusName
    regression: bool = Field(description="seen again after it was resolved")
    count: int
    first_seen: datetime
    last_seen: datetime


class ErrorPage(BaseModel):
    """One page of groups, most recently seen first."""

    total: int
    limit: int
    offset: int
    items: list[ErrorGroup]


class TrendPoint(BaseModel):
    """Occurrences in the hour starting at `hour`."""

    hour: datetime
    count: int


class StackFrame(BaseModel):
    """One frame, outermost first."""

    module: str
    function: str
    filename: str
    lineno: int
    in_app: bool


class ErrorSample(BaseModel):
    """One recent occurrence."""

    seen: datetime
    message: str
    route: str | None
    method: str | None
    trace_id: str | None
    release: str | None
    environment: str | None
    stack: list[StackFrame]
    context: dict[str, Any]


class ErrorGroupDetail(ErrorGroup):
    """A group with its routes, last-24-hour trend and recent samples."""

    routes: dict[str, int]
    trend: list[TrendPoint]
    samples: list[ErrorSample]


class TopErrorGroup(ErrorGroup):
    """A group and its occurrences inside the window."""

    window_count: int


class ErrorSummary(BaseModel):
    """Totals, novelty and a 24-hour trend."""

    groups: int
    events: int
    by_status: dict[StatusName, int]
    new_last_hour: int
    new_last_day: int
    regressions: int
    events_last_hour: int
    events_last_day: int
    trend: list[TrendPoint]


class StatusChange(BaseModel):
    """The body of `PATCH /errors/{id}`."""

    model_config = ConfigDict(extra="forbid")
    status: StatusName


_UNKNOWN: dict[str, Any] = {"model": ErrorReply, "description": "no error group with that id"}
# FastAPI answers 400 to a body it cannot decode at all (not UTF-8); JSON it can decode but that
# is not a valid change is a 422.
_UNDECODABLE: dict[str, Any] = {"model": ErrorReply, "description": "the body is not UTF-8"}


def _links(pointer: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI links from a reply that holds a group's id at `pointer` to that group's routes,
    for clients (and schemathesis's stateful tests) to follow."""
    value = f"$response.body#{pointer}"
    return {200: {"links": {
        "GetErrorGroup": {"operationId": "get_error_group", "parameters": {"group_id": value}},
        "SetErrorStatus": {"operationId": "set_error_status", "parameters": {"group_id": value}},
    }}}


def _not_found(group_id: str) -> HTTPException:
    shown = group_id if len(group_id) <= 64 else group_id[:64] + "..."  # ids are 32 hex digits
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no error group with id {shown!r}")


def errors_router(store: ErrorStore, settings: Settings) -> APIRouter:
    """The errors API over `store`, behind the API token."""
    router = APIRouter(
        prefix="/api/v1/observability/errors", tags=["errors"], **protected(settings),
        # The token and the body's size are checked before PATCH's body is read.
        route_class=bounded_route(settings, settings.api_body_max_bytes,
                                  env_name("api_body_max_bytes")),
    )

    # Plain `def` handlers: FastAPI runs them in its thread pool, off the event loop.
    @router.get("", response_model=ErrorPage, responses=_links("/items/0/id"))
    def list_errors(
        status: StatusName | None = None,
        type: Annotated[str | None, Query(max_length=300)] = None,
        route: Annotated[str | None, Query(max_length=300)] = None,
        since: Since = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,  # SQLite takes 64-bit ints only
    ) -> dict[str, Any]:
        total, items = store.groups(
            status=status, type=type, route=route,
            since=since_time(since, datetime.now(timezone.utc)).timestamp() if since else None,
            limit=limit, offset=offset,
        )
        return {"total": total, "limit": limit, "offset": offset, "items": items}

    @router.get("/summary", response_model=ErrorSummary)
    def summary() -> dict[str, Any]:
        return store.summary()

    @router.get("/top", response_model=list[TopErrorGroup], responses=_links("/0/id"))
    def top(
        window_hours: Annotated[int, Query(ge=1, le=24 * 90)] = 24,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> list[dict[str, Any]]:
        return store.top(window_hours=window_hours, limit=limit)

    @router.get("/{group_id}", response_model=ErrorGroupDetail, operation_id="get_error_group",
                responses={404: _UNKNOWN, **_links("/id")})
    def get_error(group_id: str) -> dict[str, Any]:
        group = store.group(group_id)
        if group is None:
            raise _not_found(group_id)
        return group

    @router.patch(
        "/{group_id}", response_model=ErrorGroup, operation_id="set_error_status",
        responses={400: _UNDECODABLE, 404: _UNKNOWN, 413: TOO_LARGE_REPLY, **_links("/id")},
    )
    def set_status(group_id: str, change: StatusChange) -> dict[str, Any]:
        group = store.set_status(group_id, change.status)
        if group is None:
            raise _not_found(group_id)
        return group

    return router
