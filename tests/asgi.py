"""Helpers that drive an ASGI app in process, or serve it with a real uvicorn in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan,
        log_config=None, access_log=False,
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
