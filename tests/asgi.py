"""Helpers that drive an ASGI app in process, or serve it with a real uvicorn in a thread.

Starlette's TestClient warns about httpx (and the suite treats warnings as errors), so in-process
tests go through httpx's ASGITransport.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import uvicorn

from tests.conftest import free_port


def request(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request through the app in process; app exceptions propagate to the caller."""
    return requests(app, [(method, path)], **kwargs)[0]


def requests(
    app: Any, calls: list[tuple[str, str]], raise_app_exceptions: bool = True, **kwargs: Any
) -> list[httpx.Response]:
    """Several requests through the app in process, one after another, in one event loop."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.request(method, path, **kwargs) for method, path in calls]

    return asyncio.run(run())


@contextmanager
def serve_in_thread(app: Any, lifespan: str = "off") -> Iterator[str]:
    """Serve `app` with a real uvicorn server on a free port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan=lifespan,
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


T = TypeVar("T")


class SyncClient:
    """`get`/`post`/`patch`/`request` that block until the in-process app has answered."""

    def __init__(self, app: Any, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop):
        self.app = app
        self._client = client
        self._loop = loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the client's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(60)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request and return the response."""
        return self.run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)


@contextmanager
def serve_in_process(app: Any, lifespan: bool = True) -> Iterator[SyncClient]:
    """Run `app` (and its lifespan) on an event loop in a thread; yields a blocking client.

    An exception that escapes the app gives the 500 a real client would see.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = SyncClient(app, httpx.AsyncClient(transport=transport, base_url="http://test"), loop)
    context = app.router.lifespan_context(app) if lifespan else None
    if context is not None:
        client.run(context.__aenter__())
    try:
        yield client
    finally:
        try:
            client.run(client._client.aclose())
            if context is not None:
                client.run(context.__aexit__(None, None, None))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
