"""Routes that authorise and bound a request before its body is read.

FastAPI reads and parses a route's body before it solves the route's dependencies, the token
check among them: a 100 MB body sent without a token was read whole (RSS 65 -> 675 MB) before
its 401. A `bounded_route` class checks the token and the declared `Content-Length` first, then
hands FastAPI a body that stops with a 413 as soon as it grows past the cap (a chunked body
declares no length). What was not read stays in the socket: uvicorn reads at most 64 KiB ahead
of the app, and drops the rest of a body once the answer is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message, Receive, Scope, Send

from exporter.api.auth import bearer_token_guard
from exporter.api.validation import ErrorReply
from exporter.config import Settings

TOO_LARGE = 413
# The OpenAPI answer every bounded route declares.
TOO_LARGE_REPLY: dict[str, Any] = {
    "model": ErrorReply,
    "description": "the body is larger than the route's cap (`detail` names it and its setting)",
}


def too_large(limit: int, setting: str) -> HTTPException:
    """The 413 of a body over `limit` bytes; `setting` names what sets the cap."""
    return HTTPException(TOO_LARGE, f"body larger than {limit} bytes (the cap is {setting})")


def declared_length(request: Request) -> int | None:
    """The body's `Content-Length`, or None when it declares none (chunked)."""
    text = request.headers.get("content-length", "")
    return int(text) if text.isdigit() else None


def _bounded_receive(receive: Receive, limit: int, variable: str) -> Receive:
    """`receive` that raises the 413 once the body read so far is over `limit` bytes."""
    size = 0

    async def bounded() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise too_large(limit, variable)
        return message

    return bounded


def bounded_route(
    settings: Settings, limit: int, variable: str, *, token: bool = True
) -> type[APIRoute]:
    """An `APIRoute` class (for `APIRouter(route_class=...)`) whose routes check the bearer
    token (when `token` and EXPORTER_API_TOKEN is set) and a body cap of `limit` bytes before
    FastAPI reads the body: 401 or 413, each with a `detail`. A method no route of the path
    serves is answered 405 with every method of the path in `Allow` (Starlette names those of
    the first route only: `Allow: GET` where GET and PATCH are served)."""
    authorize = bearer_token_guard(settings) if token else None
    routes: list[APIRoute] = []  # every route of this class: the router's

    class BoundedRoute(APIRoute):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            routes.append(self)

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                if authorize is not None:
                    authorize(request)
                length = declared_length(request)
                if length is not None and length > limit:
                    raise too_large(limit, variable)
                return await handler(
                    Request(request.scope, _bounded_receive(request.receive, limit, variable)))

            return guarded

        async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
            if self.methods and scope["method"] not in self.methods:
                allowed = {m for route in routes if route.path == self.path
                           for m in route.methods or ()}
                raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
            await super().handle(scope, receive, send)

    return BoundedRoute
