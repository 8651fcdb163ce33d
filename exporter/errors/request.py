"""The request an error is captured in: its route template and method, for exceptions that are
logged or reported inside a request (the middleware's observer sees only those that escape)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, NamedTuple

from exporter.middleware import STANDARD_METHODS
from exporter.routes import RouteResolver
from exporter.types import ASGIApp, Receive, Scope, Send


class _Snapshot(NamedTuple):
    method: str
    scope: dict[str, Any]  # method, path and root_path as the request came in
    routes: Sequence[Any] | None


_current: ContextVar[_Snapshot | None] = ContextVar("exporter_error_request", default=None)
_resolver = RouteResolver()
_resolver_lock = threading.Lock()  # capture() runs on any thread; the resolver is not shared-safe


class RequestContextMiddleware:
    """Pure ASGI: remembers each HTTP request's method and path for the error capture.

    It costs a context variable per request; the route template is worked out only when an
    error is captured.
    """

    def __init__(self, app: ASGIApp, routes_from: Any = None) -> None:
        self.app = app
        self._routes_from = routes_from

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        owner = self._routes_from if self._routes_from is not None else scope.get("app")
        method = scope["method"]
        # A copy of the keys routing reads: a Mount changes root_path in the shared scope.
        snapshot = _Snapshot(
            method if method in STANDARD_METHODS else "OTHER",
            {"method": method, "path": scope["path"], "root_path": scope.get("root_path", "")},
            getattr(owner, "routes", None),
        )
        token = _current.set(snapshot)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


def current_request() -> tuple[str, str] | None:
    """`(route template, method)` of the request being handled, or None outside one."""
    snapshot = _current.get()
    if snapshot is None:
        return None
    with _resolver_lock:
        route = _resolver.resolve(snapshot.scope, snapshot.routes)
    return route, snapshot.method
