"""A synchronous client for an ASGI app in-process (httpx's ASGITransport), lifespan included."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import httpx


class AsgiClient:
    """`with AsgiClient(app) as client: client.get("/path")`; runs the app's lifespan."""

    def __init__(self, app: Any, lifespan: bool = True) -> None:
        self.app = app
        self._lifespan = lifespan
        self._context: Any = None
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

    def __enter__(self) -> AsgiClient:
        if self._lifespan:
            self._context = self.app.router.lifespan_context(self.app)
            self.loop.run_until_complete(self._context.__aenter__())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._context is not None:
                self.loop.run_until_complete(self._context.__aexit__(kind, exc, tb))
            self.loop.run_until_complete(self.client.aclose())
        finally:
            self.loop.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request and return the response."""
        return self.loop.run_until_complete(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET `url`."""
        return self.request("GET", url, **kwargs)
