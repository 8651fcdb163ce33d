"""Pure ASGI middleware: HTTP metrics by route template, and the request's trace id."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from exporter.metrics import HttpMetrics
from exporter.routes import RouteResolver
from exporter.trace import TraceContext, _current, trace_from_headers
from exporter.types import ASGIApp, Message, Receive, Scope, Send

STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)
TRACE_HEADER = b"x-trace-id"
_log = logging.getLogger(__name__)


def current_request() -> tuple[str, str] | None:
    """`(route template, method)` of the counted request being handled, or None outside one:
    errors logged or reported inside a request are filed under its route."""
    trace = _current.get()
    if trace is None or trace.route is None or trace.method is None:
        return None
    return trace.route, trace.method


@dataclass(frozen=True, slots=True)
class CompletedRequest:
    """What an observer learns about each counted request once its response is complete."""

    method: str
    route: str
    path: str
    status: int
    duration: float
    trace_id: str
    span_id: str
    client: str | None
    exception: BaseException | None
    # The raw request line parts, for reporters that need them (Sentry's request data); they
    # hold secrets (Authorization, Cookie, tokens in the query): scrub before keeping them.
    scheme: str = "http"
    query_string: bytes = b""
    headers: Sequence[tuple[bytes, bytes]] = ()


RequestObserver = Callable[[CompletedRequest], None]


class PrometheusMiddleware:
    """Counts and times each HTTP request and sets its trace id.

    The timer stops when the last body chunk has been sent, so a streamed response is timed to
    its last byte and background tasks that run afterwards are not counted. An exception that
    escapes the app counts as status 500 (unless the response was already complete) and is
    re-raised unchanged.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        excluded_paths: Iterable[str] = (),
        routes_from: Any = None,
        observers: Sequence[RequestObserver] = (),
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._excluded = frozenset(excluded_paths)
        # The app whose routes give templates; else the Starlette app found in the scope.
        self._routes_from = routes_from
        self._resolver = RouteResolver()
        self._route_list: Any = None
        # Called in the request's task after the metrics are recorded (access log, error store);
        # they must be cheap and must not raise.
        self.observers: list[RequestObserver] = (
            observers if isinstance(observers, list) else list(observers)
        )

    def _notify(
        self, scope: Scope, method: str, route: str, status: int, elapsed: float,
        trace: TraceContext, error: BaseException | None,
    ) -> None:
        client = scope.get("client")
        done = CompletedRequest(
            method, route, scope["path"], status, elapsed, trace.trace_id, trace.span_id,
            client[0] if client else None, error, scope.get("scheme", "http"),
            scope.get("query_string", b""), scope.get("headers") or (),
        )
        for observer in self.observers:
            try:
                observer(done)
            except Exception:  # an observer's bug must never break the user's request
                _log.exception("request observer %r failed", observer)

    def _routes(self, scope: Scope) -> Any:
        owner = self._routes_from if self._routes_from is not None else scope.get("app")
        return getattr(owner, "routes", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._excluded:
            await self.app(scope, receive, send)
            return
        routes = self._route_list
        if routes is None:
            routes = self._routes(scope)
            if self._routes_from is not None:  # the app's own list: routes added later land
                self._route_list = routes      # in it, and the resolver notices them
        route = self._resolver.resolve(scope, routes)
        if route in self._excluded:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in STANDARD_METHODS:
            method = "OTHER"

        trace = trace_from_headers(scope.get("headers") or (), route, method)
        trace_header = (TRACE_HEADER, trace.trace_id.encode("latin-1"))
        token = _current.set(trace)
        series = self._metrics.begin(method, route)
        start = perf_counter()
        status = 500
        elapsed = 0.0
        finished = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, finished, elapsed
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                message["headers"] = [*(message.get("headers") or ()), trace_header]
                await send(message)
            elif kind == "http.response.body" and not message.get("more_body"):
                try:
                    await send(message)
                finally:
                    if not finished:  # the response is complete: stop the clock here
                        finished = True
                        elapsed = perf_counter() - start
                        series.finish(status, elapsed, trace.trace_id)
            else:
                await send(message)

        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            error = exc
            if not finished:
                status = 500
            raise
        finally:
            if not finished:  # an exception, or the app returned without completing its response
                finished = True
                elapsed = perf_counter() - start
                series.finish(status, elapsed, trace.trace_id)
            if self.observers:
                # Told once the app has returned, not at the last byte: Starlette's error
                # middleware sends its 500 first and re-raises afterwards, and observers (error
                # capture) must see that exception. The duration is still the one measured at
                # the last byte.
                self._notify(scope, method, route, status, elapsed, trace, error)
            if error is None:
                _current.reset(token)
            # else: the server logs the exception after it leaves the app ("Exception in ASGI
            # application"), still in this request's task; keeping the trace set lets that log
            # line carry the trace id the client got in X-Trace-Id. The task ends right after.
