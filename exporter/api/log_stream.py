"""`GET /api/v1/observability/logs/stream`: the live log tail over a WebSocket.

Browsers cannot set headers on a WebSocket, so the API token travels as a subprotocol
(`Sec-WebSocket-Protocol: exporter-logs, bearer.<token>`) or as the first message
(`{"type": "auth", "token": "..."}`); never in the URL, which reaches access logs. A missing or
wrong token closes the socket with code 4401 and a reason.

Server messages (JSON text): `{"type": "ready", ...}` once, then `{"type": "lines", "lines":
[<one JSON log line as a string>, ...]}` as lines are written, and `{"type": "skipped", "count":
N}` when the client fell behind and N lines were skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from exporter.config import Settings
from exporter.logs import layout
from exporter.logs.query import STREAMS
from exporter.logs.tail import LogTail, TailFilter, TooManySubscribers

PREFIX = "/api/v1/observability"
PROTOCOL = "exporter-logs"
BEARER_PREFIX = "bearer."
AUTH_TIMEOUT_SECONDS = 5.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013
_STREAM_KIND = {"app": layout.APP, "error": layout.ERROR, "access": layout.ACCESS,
                "slow_requests": layout.SLOW}
_LEVELS = ("debug", "info", "warning", "error", "critical")
_TRACE_ID = re.compile(r"^.{1,128}$", re.S)


def _filters(params: Any) -> tuple[int, TailFilter]:
    """The stream kind and filters from the query string; ValueError naming the parameter."""
    unknown = set(params) - {"level", "trace_id", "contains", "stream"}
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]!r}")
    stream = params.get("stream", "app")
    if stream not in STREAMS:
        raise ValueError(f"stream: one of {', '.join(STREAMS)}")
    level = params.get("level")
    if level is not None and level.lower() not in _LEVELS:
        raise ValueError(f"level: one of {', '.join(_LEVELS)}")
    trace_id = params.get("trace_id")
    if trace_id is not None and not _TRACE_ID.match(trace_id):
        raise ValueError("trace_id: 1 to 128 characters")
    contains = params.get("contains")
    if contains is not None and not 1 <= len(contains) <= 200:
        raise ValueError("contains: 1 to 200 characters")
    return _STREAM_KIND[stream], TailFilter(level, trace_id, contains)


async def _token_from_first_message(websocket: WebSocket) -> str | None:
    try:
        text = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_SECONDS)
        message = json.loads(text)
    except (asyncio.TimeoutError, ValueError, KeyError, RuntimeError, WebSocketDisconnect):
        return None
    if isinstance(message, dict) and message.get("type") == "auth":
        token = message.get("token")
        return token if isinstance(token, str) else None
    return None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # The client may be gone already: closing twice is not an error worth a traceback.
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close(code, reason)


def log_stream_router(settings: Settings, tail: LogTail) -> APIRouter:
    """The WebSocket route over `tail`, guarded by `EXPORTER_API_TOKEN` when it is set."""
    router = APIRouter(prefix=PREFIX)
    expected = (
        settings.api_token.get_secret_value().encode() if settings.api_token is not None else None
    )

    @router.websocket("/logs/stream")
    async def stream(websocket: WebSocket) -> None:
        offered = list(websocket.scope.get("subprotocols") or ())
        bearer = next((p[len(BEARER_PREFIX):] for p in offered if p.startswith(BEARER_PREFIX)),
                      None)
        # Never echo the bearer value back: select our own protocol name when it was offered.
        await websocket.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
        if expected is not None:
            token = bearer if bearer is not None else await _token_from_first_message(websocket)
            if token is None:
                await _close(
                    websocket, CLOSE_UNAUTHORIZED, "send the token as subprotocol "
                    'bearer.<token> or as the first message {"type":"auth","token":...}',
                )
                return
            if not hmac.compare_digest(token.strip().encode(), expected):
                await _close(websocket, CLOSE_UNAUTHORIZED, "invalid bearer token")
                return
        try:
            kind, where = _filters(websocket.query_params)
        except ValueError as exc:
            await _close(websocket, CLOSE_POLICY, str(exc)[:120])
            return
        try:
            subscription = tail.subscribe(kind, where, asyncio.get_running_loop())
        except TooManySubscribers as exc:
            await _close(websocket, CLOSE_TRY_LATER, str(exc)[:120])
            return
        try:
            await websocket.send_json({
                "type": "ready", "queue_lines": tail.max_lines,
                "filters": {"level": where.level, "trace_id": where.trace_id,
                            "contains": where.contains},
            })

            async def pump() -> None:
                while True:
                    lines, skipped = await subscription.next_batch()
                    if lines:
                        # Lines stay strings: a client parses each one, so one odd line
                        # cannot break a whole batch.
                        await websocket.send_text(json.dumps({"type": "lines", "lines": lines}))
                    if skipped:
                        await websocket.send_text(
                            json.dumps({"type": "skipped", "count": skipped})
                        )

            async def until_closed() -> None:
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass  # the client has nothing to say after the token

            tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(until_closed())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away mid-send
        finally:
            subscription.close()
        await _close(websocket, 1000, "")

    return router
