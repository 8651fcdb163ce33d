"""Pure ASGI middleware: HTTP metrics by route template, and the request's trace id."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from time import perf_counter
from typing import Any, NamedTuple

from exporter.http.metrics import HttpMetrics, RouteSeries
from exporter.http.otel import TraceOf, request_trace_source
from exporter.http.routes import RouteResolver
from exporter.http.trace import TraceContext, _current, trace_from_headers
from exporter.http.types import ASGIApp, Message, Receive, Scope, Send

STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)
TRACE_HEADER = b"x-trace-id"
# Named as before the module moved into exporter.http: log lines keep their `logger` field.
_log = logging.getLogger("exporter.middleware")


def current_request() -> tuple[str, str] | None:
    """`(route template, method)` of the counted request being handled, or None outside one:
    errors logged or reported inside a request are filed under its route."""
    trace = _current.get()
    if trace is None or trace.route is None or trace.method is None:
        return None
    return trace.route, trace.method


class CompletedRequest(NamedTuple):
    """What an observer learns about each counted request once its response is complete.

    A named tuple: made once per request, it cost a sixth of the frozen dataclass it was (whose
    `__init__` sets each of its twelve fields through `object.__setattr__`)."""

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
_new_tuple = tuple.__new__


# Raw request paths whose series the middleware remembers (`/items/1`, `/items/2`... all lead
# to one series); the oldest is forgotten first.
KNOWN_PATHS = 4096
_UNSEEN: Any = object()


class PrometheusMiddleware:
    """Counts and times each HTTP request and sets its trace id (the OpenTelemetry span's, when
    one records the request: exporter.http.otel).

    The timer stops when the last body chunk is handed to the server, so a streamed response is
    timed to its last byte and background tasks that run afterwards are not counted. An
    exception that escapes the app counts as status 500 (unless the response was already
    complete) and is re-raised unchanged.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        excluded_paths: Iterable[str] = (),
        routes_from: Any = None,
        observers: Sequence[RequestObserver] = (),
        error_observers: Sequence[RequestObserver] = (),
    ) -> None:
        self.app = app
        self._metrics = metrics
        # Methods outside the standard nine share one value: the conventions name it _OTHER.
        self._other_method = "_OTHER" if metrics.naming == "semconv" else "OTHER"
        self._excluded = frozenset(excluded_paths)
        # The app whose routes give templates; else the Starlette app found in the scope.
        self._routes_from = routes_from
        self._resolver = RouteResolver()
        # The route list the answers in `_known` came from, and its length then: the app's own
        # list, so routes added later land in it and a new length makes every answer stale.
        self._route_list: Any = None
        self._route_count = -1
        # (method, path, root_path) of recent requests -> the series they are counted in, or
        # None for one not counted (an excluded path or route template).
        self._known: dict[tuple[str, str, str], RouteSeries | None] = {}
        # Called in the request's task after the metrics are recorded (access log, error store);
        # they must be cheap and must not raise.
        self.observers: list[RequestObserver] = (
            observers if isinstance(observers, list) else list(observers)
        )
        # ...and those told only of a request that raised (error capture): a request that did
        # not raise builds nothing for them (in-app mode cost 2.5 % of req/s before).
        self.error_observers: list[RequestObserver] = (
            error_observers if isinstance(error_observers, list) else list(error_observers)
        )
        # How a request's trace is found: decided at the first request (exporter.http.otel),
        # once the app's OpenTelemetry set-up (FastAPI's is done at start-up) is in place.
        self._trace_of: TraceOf = trace_from_headers
        self._trace_source_decided = False

    def _notify(
        self, scope: Scope, series: RouteSeries, status: int, elapsed: float,
        trace: TraceContext, error: BaseException | None,
    ) -> None:
        client = scope.get("client")
        # tuple.__new__, not CompletedRequest(...): the named tuple's own __new__ is a Python
        # function, one more frame per request.
        done = _new_tuple(CompletedRequest, (
            series.method, series.route, scope["path"], status, elapsed, trace.trace_id,
            trace.span_id, client[0] if client else None, error, scope.get("scheme", "http"),
            scope.get("query_string", b""), scope.get("headers") or (),
        ))
        for observer in (self.observers if error is None
                         else (*self.observers, *self.error_observers)):
            try:
                observer(done)
            except Exception:  # an observer's bug must never break the user's request
                _log.exception("request observer %r failed", observer)

    def _learn(self, scope: Scope, key: tuple[str, str, str]) -> RouteSeries | None:
        """Where a request not seen lately is counted (None: nowhere), remembered by `key`."""
        if not self._trace_source_decided:  # the first request comes through here
            self._trace_source_decided = True
            self._trace_of = request_trace_source()
        routes = self._route_list
        if routes is None:
            owner = self._routes_from if self._routes_from is not None else scope.get("app")
            routes = self._route_list = getattr(owner, "routes", None)
            if routes is None:
                routes = self._route_list = []
        if len(routes) != self._route_count:  # routes were added: every answer may be stale
            self._known.clear()
            self._route_count = len(routes)
        series: RouteSeries | None = None
        if scope["path"] not in self._excluded:
            route = self._resolver.resolve(scope, routes)
            if route not in self._excluded:
                method = scope["method"]
                series = self._metrics.series(
                    method if method in STANDARD_METHODS else self._other_method, route
                )
        if len(self._known) >= KNOWN_PATHS:
            del self._known[next(iter(self._known))]
        self._known[key] = series
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A request whose path was seen lately finds its series with one dictionary look-up;
        # another one goes through the route tables in `_learn`.
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = (scope["method"], scope["path"], scope.get("root_path", ""))
        series = self._known.get(key, _UNSEEN)
        if series is _UNSEEN or len(self._route_list) != self._route_count:
            series = self._learn(scope, key)
        if series is None:
            await self.app(scope, receive, send)
            return

        trace_of = self._trace_of
        trace = trace_of(scope.get("headers") or (), series.route, series.method)
        token = _current.set(trace)
        series.start()
        start = perf_counter()
        status = 500
        ended = 0.0  # perf_counter() when the response was complete

        def send_wrapper(message: Message) -> Awaitable[None]:
            # Not a coroutine: it hands the server's own awaitable back, one frame less.
            nonlocal status, ended
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *(message.get("headers") or ()), (TRACE_HEADER, trace.trace_id.encode())
                ]
            elif kind == "http.response.body" and not ended and not message.get("more_body"):
                ended = perf_counter()  # the last chunk: the response is complete
                series.finish(status, ended - start, trace.trace_id, ended)
            return send(message)

        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            error = exc
            if not ended:
                status = 500
                ended = perf_counter()
                series.finish(status, ended - start, trace.trace_id, ended)
            series.failed(trace.trace_id, exc)  # the semconv names record its error type
            raise
        finally:
            if not ended:  # the app returned without completing its response
                ended = perf_counter()
                series.finish(status, ended - start, trace.trace_id, ended)
            if self.observers or (error is not None and self.error_observers):
                # Told once the app has returned, not at the last byte: Starlette's error
                # middleware sends its 500 first and re-raises afterwards, and observers (error
                # capture) must see that exception. The duration is still the one measured at
                # the last byte.
                self._notify(scope, series, status, ended - start, trace, error)
            if error is None:
                _current.reset(token)
            # else: the server logs the exception after it leaves the app ("Exception in ASGI
            # application"), still in this request's task; keeping the trace set lets that log
            # line carry the trace id the client got in X-Trace-Id. The task ends right after.
