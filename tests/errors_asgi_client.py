"""A synchronous client for an ASGI app served in-process, lifespan included; an exception that
escapes the app yields the 500 the client would see (`raise_app_exceptions=False`).

Starlette's TestClient now warns about httpx (and the suite treats warnings as errors), so the
tests drive apps through httpx's ASGITransport on an event loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette

T = TypeVar("T")


class SyncClient:
    """`get`/`post`/`patch`/`request` that block until the in-process app has answered."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(60)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)


@contextmanager
def serve_in_process(app: Starlette) -> Iterator[SyncClient]:
    """Start `app`'s lifespan, yield a client, then shut the lifespan down."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = SyncClient(httpx.AsyncClient(transport=transport, base_url="http://test"), loop)
    lifespan = app.router.lifespan_context(app)
    client.run(lifespan.__aenter__())
    try:
        yield client
    finally:
        try:
            client.run(client._client.aclose())
            client.run(lifespan.__aexit__(None, None, None))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
