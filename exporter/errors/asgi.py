"""`ErrorCaptureMiddleware`: sees an exception on its way out of the app's routes.

The request observers of `PrometheusMiddleware` cannot do this for a Starlette app: its
`ServerErrorMiddleware` sends the 500 response before re-raising, so the request is already
complete (with no exception) when the exception reaches the outermost middleware. This one
sits inside `ServerErrorMiddleware` (added with `app.add_middleware`), where the exception
still travels, and inside `PrometheusMiddleware`, so the request's trace id is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exporter.middleware import STANDARD_METHODS
from exporter.routes import RouteResolver
from exporter.trace import current_trace_id
from exporter.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from exporter.errors.capture import ErrorCapture


class ErrorCaptureMiddleware:
    """Captures exceptions raised by the app's routes (with route template, method, trace id)."""

    def __init__(self, app: ASGIApp, *, capture: ErrorCapture, routes_from: Any) -> None:
        self.app = app
        self._capture = capture
        self._routes_from = routes_from
        self._resolver = RouteResolver(max_cached=256)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The router rewrites these in place for mounts; the template is resolved from the
        # originals, and only when something failed.
        path, root_path = scope["path"], scope.get("root_path", "")
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            original = {**scope, "path": path, "root_path": root_path}
            route = self._resolver.resolve(original, getattr(self._routes_from, "routes", None))
            method = scope["method"] if scope["method"] in STANDARD_METHODS else "OTHER"
            request = _request_info(scope, path) if self._capture.sentry_started else None
            self._capture.capture(exc, route=route, method=method, trace_id=current_trace_id(),
                                  request=request)
            raise


def _request_info(scope: Scope, path: str) -> dict[str, Any]:
    """What Sentry's request interface needs, raw: scrubbed later, off the request path."""
    return {
        "method": scope["method"],
        "scheme": scope.get("scheme", "http"),
        "root_path": scope.get("root_path", ""),
        "path": path,
        "query_string": scope.get("query_string", b""),
        "headers": list(scope.get("headers") or ()),
    }
