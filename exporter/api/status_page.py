"""The status page, one self-contained HTML file shipped in the package: at `/` on the sidecar,
at EXPORTER_STATUS_PAGE_PATH (`/observability`) in an app instrumented with the observability API.

The page holds no data (it reads the token-guarded API from the browser), so it is served without
the token. Its inline script and style are allowed by hash in a strict Content-Security-Policy:
nothing else runs and it talks to its own origin only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from exporter.config import Settings

PAGE = "web/index.html"


def _hashes(html: str, tag: str) -> list[str]:
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
        for b in bodies
    ]


def page_html() -> str:
    """The status page as shipped."""
    return resources.files("exporter").joinpath(PAGE).read_text(encoding="utf-8")


def status_page_router(settings: Settings, path: str = "/") -> APIRouter:
    """The router serving the status page at `path` (`/` on the sidecar)."""
    router = APIRouter()
    # Telling the page up front spares it a 401 (which browsers log as an error) to find out.
    required = "true" if settings.api_token is not None else "false"
    html = page_html().replace("__TOKEN_REQUIRED__", required)
    policy = (
        "default-src 'none'; "
        f"script-src {' '.join(_hashes(html, 'script'))}; "
        f"style-src {' '.join(_hashes(html, 'style'))}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }

    @router.api_route(
        path, methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False
    )
    async def status_page() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    return router
