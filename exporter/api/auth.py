"""The bearer-token rule shared by every /api/v1 route."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request, status

from exporter.config import Settings


def bearer_token_guard(settings: Settings) -> Callable[[Request], None]:
    """A FastAPI dependency: 401 unless `Authorization: Bearer <EXPORTER_API_TOKEN>` is sent.

    With no token configured every request passes. The comparison is constant-time.
    """
    expected = (
        settings.api_token.get_secret_value().encode() if settings.api_token is not None else None
    )

    def guard(request: Request) -> None:
        if expected is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "this API needs 'Authorization: Bearer <token>' (EXPORTER_API_TOKEN is set)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(token.strip().encode(), expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard
