"""A user's own app (not the demo) that serves its observability API itself: uvicorn imports it
as `tests.inapp_app:app`; every setting comes from EXPORTER_* variables."""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException

import exporter

app = FastAPI(title="orders")
log = logging.getLogger("orders")


@app.get("/orders/{order_id}")
async def order(order_id: int) -> dict[str, int]:
    log.info("order %d looked up", order_id)
    return {"order_id": order_id}


@app.post("/orders")
async def create() -> dict[str, bool]:
    raise HTTPException(503, "orders are closed")


exporter.instrument(app, observability=True)
