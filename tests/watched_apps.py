"""A user's app as the sidecar watches it: instrumented, on a registry of its own (as in its own
process), with a fast, a failing and a slow route."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from exporter.app import instrument
from exporter.config import load_settings


def shop() -> FastAPI:
    """/work answers at once, /broken raises (a 500), /slow takes 0.65 s."""
    app = FastAPI()

    @app.get("/work")
    async def work() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("broken on purpose")

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(0.65)
        return {"ok": True}

    instrument(app, load_settings(log_stdout=False), CollectorRegistry())
    return app
