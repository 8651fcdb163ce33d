"""The benchmark's instrumented app (bench/apps.py), plus a route that reports the process's
cyclic-GC collection counts (test_middleware_gc.py)."""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path

from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from apps import ours_app


def instrumented() -> FastAPI:
    app = ours_app()

    @app.get("/gcstats")
    async def gcstats() -> list[int]:
        return [generation["collections"] for generation in gc.get_stats()]

    return app


def logging_app() -> FastAPI:
    """The instrumented app with JSON logs (files only, under EXPORTER_LOG_DIR), the access log,
    and a route that logs one line per request."""
    from exporter import enable_access_log, load_settings, setup_logging

    app = instrumented()
    setup_logging(load_settings(log_stdout=False))
    enable_access_log(app)
    log = logging.getLogger("shop")

    @app.get("/logged/{item_id}")
    async def logged(item_id: int) -> dict[str, int]:
        log.info("item %d looked at", item_id, extra={"item_id": item_id, "shop": "north"})
        return {"item_id": item_id}

    return app
