"""The benchmark's instrumented app (bench/apps.py), plus a route that reports the process's
cyclic-GC collection counts (test_middleware_gc.py)."""

from __future__ import annotations

import gc
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
