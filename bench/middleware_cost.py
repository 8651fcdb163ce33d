"""Where the middleware's per-request time goes: the bench app called in-process, bare vs
`instrument(app)`, then each step of `PrometheusMiddleware` timed on its own.

    .venv/bin/python bench/middleware_cost.py [--requests 20000] [--repeat 5]

No server and no network: the ASGI app is awaited directly in a loop, so the difference between
the two variants is the middleware's own cost. Each figure is the best of `--repeat` runs (the
least disturbed by other processes on a shared machine), in microseconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps import bare_app

from exporter.app import instrument
from exporter.config import load_settings
from exporter.http.metrics import HttpCollector
from exporter.http.middleware import PrometheusMiddleware
from exporter.http.routes import RouteResolver
from exporter.http.trace import _current, trace_from_headers
from exporter.http.types import Message, Receive, Scope, Send

# What wrk sends: a Host header and nothing else, so every request gets a new trace id.
HEADERS = [(b"host", b"127.0.0.1:8000")]
ID_RANGE = 1000


def _scope(item_id: int) -> dict[str, Any]:
    path = f"/items/{item_id}"
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": HEADERS, "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000), "state": {},
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


async def _drive(app: Any, requests: int) -> float:
    scopes = [_scope(i % ID_RANGE + 1) for i in range(requests)]
    start = time.perf_counter()
    for scope in scopes:
        await app(scope, _receive, _send)
    return (time.perf_counter() - start) / requests * 1e6


def _app_cost(make: Callable[[], Any], requests: int, repeat: int) -> float:
    app = make()
    asyncio.run(_drive(app, 2000))  # builds the middleware stack, fills caches
    return min(asyncio.run(_drive(app, requests)) for _ in range(repeat))


async def _minimal_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


def _middleware_alone(requests: int, repeat: int) -> tuple[float, float]:
    """`(minimal app, the same wrapped in PrometheusMiddleware)`: the middleware's whole cost."""
    app = bare_app()
    metrics = HttpCollector(load_settings().histogram_buckets, CollectorRegistry())
    wrapped = PrometheusMiddleware(_minimal_app, metrics=metrics, routes_from=app)
    return (_app_cost(lambda: _minimal_app, requests, repeat),
            _app_cost(lambda: wrapped, requests, repeat))


def _micro(fn: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def _step_costs(number: int, repeat: int) -> list[tuple[str, float]]:
    app = bare_app()
    routes = app.routes
    metrics = HttpCollector(load_settings().histogram_buckets, CollectorRegistry())
    resolver = RouteResolver()
    scopes = [_scope(i) for i in range(1, ID_RANGE + 1)]
    middleware = PrometheusMiddleware(_minimal_app, metrics=metrics, routes_from=app)
    asyncio.run(_drive(middleware, ID_RANGE))  # every path once: all seen lately
    known = middleware._known
    hit = scopes[6]
    trace = trace_from_headers(HEADERS)

    def seen_lately() -> object:
        return known.get((hit["method"], hit["path"], hit.get("root_path", "")))

    def contextvar() -> None:
        _current.reset(_current.set(trace))

    def series() -> None:
        one = metrics.series("GET", "/items/{item_id}")
        one.start()
        one.finish(200, 0.004, trace.trace_id)

    def headers_copy() -> None:
        headers = list(HEADERS)
        headers.append((b"x-trace-id", trace.trace_id.encode("latin-1")))

    steps: list[tuple[str, Callable[[], object]]] = [
        ("series of a path seen lately (the middleware's dictionary)", seen_lately),
        ("routes.RouteResolver.resolve (a path not seen lately)", lambda: resolver.resolve(
            scopes[int.from_bytes(os.urandom(2), "little") % ID_RANGE], routes)),
        ("trace.trace_from_headers (no incoming id)", lambda: trace_from_headers(HEADERS)),
        ("contextvar set + reset", contextvar),
        ("metrics.series + start + finish (counter, histogram, exemplar, gauge)", series),
        ("X-Trace-Id header: copy list + append", headers_copy),
        ("perf_counter x2", lambda: (time.perf_counter(), time.perf_counter())),
    ]
    return [(name, _micro(fn, number, repeat)) for name, fn in steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    def ours() -> Any:
        return instrument(bare_app(), load_settings(), CollectorRegistry())

    bare_us = _app_cost(bare_app, args.requests, args.repeat)
    ours_us = _app_cost(ours, args.requests, args.repeat)
    print(f"In-process ASGI calls, GET /items/{{1..{ID_RANGE}}}, best of {args.repeat} x "
          f"{args.requests} requests (µs per request)\n")
    print("| app | µs/request | vs bare |\n| --- | ---: | ---: |")
    print(f"| bare | {bare_us:.1f} | |")
    print(f"| ours | {ours_us:.1f} | +{ours_us - bare_us:.1f} µs ({ours_us / bare_us:.3f}x) |")
    minimal_us, wrapped_us = _middleware_alone(args.requests, args.repeat)
    print(f"| minimal ASGI app (two sends) | {minimal_us:.1f} | |")
    print(f"| minimal app in PrometheusMiddleware | {wrapped_us:.1f} | "
          f"+{wrapped_us - minimal_us:.1f} µs (the middleware's whole cost) |")

    print("\nSteps of PrometheusMiddleware, each timed alone (µs per call)\n")
    print("| step | µs |\n| --- | ---: |")
    for name, cost in _step_costs(max(args.requests, 20000), args.repeat):
        print(f"| {name} | {cost:.2f} |")


if __name__ == "__main__":
    main()
