"""Demo routes and a light background load, so a newcomer sees live numbers at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from exporter.api.bounded import TOO_LARGE_REPLY, bounded_route
from exporter.config import Settings, env_name

# Share of the background load each demo route gets. /demo/slow gets 10 %, so the p95 latency
# sits at the slow route's latency: near the 500 ms threshold by default.
_MIX: tuple[tuple[str, float], ...] = (
    ("/demo/fast", 0.45),
    ("/demo/items/{n}", 0.20),
    ("/demo/flaky", 0.25),
    ("/demo/slow", 0.10),
)
_MAX_IN_FLIGHT = 32


class DemoConfig(BaseModel):
    """The demo's knobs; change them at run time with `PUT /demo/config`."""

    error_ratio: float = Field(ge=0.0, le=1.0, description="share of /demo/flaky calls that fail")
    slow_seconds: float = Field(ge=0.0, le=30.0, description="latency of /demo/slow")
    rate: float = Field(ge=0.0, le=1000.0, description="background requests per second")


class DemoConfigChange(BaseModel):
    """A `PUT /demo/config` body: any of the knobs; those left out keep their value."""

    error_ratio: float | None = Field(None, ge=0.0, le=1.0)
    slow_seconds: float | None = Field(None, ge=0.0, le=30.0)
    rate: float | None = Field(None, ge=0.0, le=1000.0)


class DemoLoad:
    """Sends the demo mix through `app` itself (in process), at `rate` requests per second; a
    part of the app's runtime, started and stopped with it."""

    def __init__(
        self, settings: Settings, app: FastAPI,
        mix: tuple[tuple[str, float], ...] | None = None,
    ) -> None:
        self.app = app
        # (path, share): "{n}" in a path becomes 1..500; "POST /path" is posted.
        self.mix = mix or _MIX
        self.config = DemoConfig(
            error_ratio=settings.demo_error_ratio,
            slow_seconds=settings.demo_slow_seconds,
            rate=settings.demo_rate,
        )
        self._task: asyncio.Task[None] | None = None
        self._random = random.Random()

    def start(self) -> None:
        """Start the background load on the running event loop (idempotent)."""
        if self._task is None:
            # httpx logs every request at INFO: the demo's own traffic would flood the logs.
            logging.getLogger("httpx").setLevel(logging.WARNING)
            self._task = asyncio.get_running_loop().create_task(self._run(self.app))

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the load and wait for it (idempotent; the runtime bounds the wait by
        `timeout`)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, app: FastAPI) -> None:
        in_flight: set[asyncio.Task[Any]] = set()
        # A route that raises answers 500 as a server would: the load must not fail on it.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        paths = [path for path, _ in self.mix]
        weights = [weight for _, weight in self.mix]
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            try:
                while True:
                    rate = self.config.rate
                    if rate <= 0:
                        await asyncio.sleep(1.0)
                        continue
                    await asyncio.sleep(self._random.expovariate(rate))
                    if len(in_flight) >= _MAX_IN_FLIGHT:
                        continue
                    path = self._random.choices(paths, weights)[0]
                    path = path.replace("{n}", str(self._random.randint(1, 520)))
                    method, _, path = path.rpartition(" ")
                    task = asyncio.create_task(client.request(method or "GET", path))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
            finally:
                for task in in_flight:
                    task.cancel()
                await asyncio.gather(*in_flight, return_exceptions=True)


def demo_router(load: DemoLoad, settings: Settings) -> APIRouter:
    """The demo routes: fast, an item lookup, slow (near the threshold) and flaky.

    They need no token, as the demo's own traffic does not send one; `PUT /demo/config`'s body
    is capped (EXPORTER_API_BODY_MAX_BYTES) before it is read."""
    router = APIRouter(prefix="/demo", tags=["demo"], route_class=bounded_route(
        settings, settings.api_body_max_bytes, env_name("api_body_max_bytes"), token=False))

    @router.get("/fast")
    async def fast() -> dict[str, bool]:
        return {"ok": True}

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @router.get("/slow")
    async def slow() -> dict[str, float]:
        # +-10 % jitter keeps the histogram from collapsing into one bucket.
        seconds = load.config.slow_seconds * random.uniform(0.9, 1.1)
        await asyncio.sleep(seconds)
        return {"slept_seconds": seconds}

    @router.get("/flaky", response_model=None)
    async def flaky() -> dict[str, bool] | JSONResponse:
        if random.random() < load.config.error_ratio:
            return JSONResponse({"error": "demo failure"}, status_code=500)
        return {"ok": True}

    @router.get("/boom")
    async def boom() -> None:
        # An unhandled exception, so the error store and the status page have one to show.
        raise RuntimeError("demo boom: an unhandled exception")

    @router.get("/config")
    async def get_config() -> DemoConfig:
        return load.config

    @router.put("/config", responses={413: TOO_LARGE_REPLY})
    async def put_config(change: DemoConfigChange) -> DemoConfig:
        load.config = load.config.model_copy(update=change.model_dump(exclude_none=True))
        return load.config

    return router
