"""The demo service's shop: routes that read a SQL database (an embedded SQLite unless
EXPORTER_DEMO_DATABASE_URL names a PostgreSQL one) and a Redis cache (EXPORTER_DEMO_REDIS_URL),
fail with a real exception at a configurable rate, log at info, warning and error, and have a
slow report that pushes the p95 latency over 500 ms."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

log = logging.getLogger("demo.shop")
ITEMS = 500


class PaymentDeclined(RuntimeError):
    """What the checkout raises now and then: a real exception, grouped by the error store."""


class Catalog:
    """The shop's items in a SQL database, with an optional Redis cache in front."""

    def __init__(self, database_url: str, data_dir: Path, redis_url: str = "") -> None:
        self._lock = threading.Lock()
        self._connect: Callable[[], Any]
        if database_url.startswith(("postgresql://", "postgres://")):
            import psycopg  # the `postgresql` extra

            self._connect = lambda: psycopg.connect(database_url, autocommit=True)
            self._placeholder = "%s"
        else:
            path = database_url.removeprefix("sqlite:///") if database_url else str(
                data_dir / "demo-shop.db")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._connect = lambda: sqlite3.connect(path, check_same_thread=False)
            self._placeholder = "?"
        self._db = self._connect()
        self._cache: Any = None
        if redis_url:
            import redis

            self._cache = redis.Redis.from_url(redis_url, socket_timeout=1.0)
        self._seed()

    def _seed(self) -> None:
        with self._lock:
            cursor = self._db.cursor()
            cursor.execute("CREATE TABLE IF NOT EXISTS demo_items "
                           "(id INTEGER PRIMARY KEY, name TEXT, price_cents INTEGER)")
            cursor.execute("SELECT COUNT(*) FROM demo_items")
            row = cursor.fetchone()
            if (row[0] if row else 0) < ITEMS:
                p = self._placeholder
                cursor.execute("DELETE FROM demo_items")
                cursor.executemany(
                    f"INSERT INTO demo_items (id, name, price_cents) VALUES ({p}, {p}, {p})",
                    [(n, f"item {n}", 100 + (n * 37) % 9900) for n in range(1, ITEMS + 1)])
            self._db.commit()

    def item(self, item_id: int) -> dict[str, Any] | None:
        """One item, from the cache when it holds it."""
        key = f"demo-shop:item:{item_id}"
        if self._cache is not None:
            cached = self._cache.hgetall(key)
            if cached:
                return {"id": item_id, "name": cached[b"name"].decode(),
                        "price_cents": int(cached[b"price_cents"])}
        with self._lock:
            cursor = self._db.cursor()
            cursor.execute(f"SELECT name, price_cents FROM demo_items WHERE id = "
                           f"{self._placeholder}", (item_id,))
            row = cursor.fetchone()
        if row is None:
            return None
        found = {"id": item_id, "name": row[0], "price_cents": row[1]}
        if self._cache is not None:
            self._cache.hset(key, mapping={"name": row[0], "price_cents": row[1]})
            self._cache.expire(key, 60)
        return found


def shop_router(catalog: Catalog, knobs: Callable[[], Any]) -> APIRouter:
    """The shop's routes; `knobs()` gives the demo's current error ratio and slow seconds."""
    router = APIRouter(prefix="/shop", tags=["shop"])

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        found = await run_in_threadpool(catalog.item, item_id)
        if found is None:
            log.warning("item %d asked for, not in the catalog", item_id)
            raise HTTPException(404, f"no item {item_id}")
        log.info("item %d looked up", item_id)
        return found

    @router.post("/checkout")
    async def checkout() -> dict[str, str]:
        if random.random() < knobs().error_ratio:
            log.error("payment declined by the (demo) payment provider")
            raise PaymentDeclined("card declined: insufficient funds (demo)")
        return {"status": "paid"}

    @router.get("/report")
    async def report() -> dict[str, float]:
        # +-10 % jitter keeps the histogram from collapsing into one bucket.
        seconds = knobs().slow_seconds * random.uniform(0.9, 1.1)
        await asyncio.sleep(seconds)
        if seconds > 0.5:
            log.warning("sales report took %.0f ms", seconds * 1000)
        return {"seconds": seconds}

    return router
