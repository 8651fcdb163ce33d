"""How setting values are written: lists as a JSON list or comma-separated, and a Sentry DSN's
shape. The validators of `Settings` use them."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit


def split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a valid JSON list ({exc.msg})") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def looks_like_dsn(value: str) -> bool:
    """True for the shape of a Sentry DSN: http(s)://<key>@<host>/<project id>."""
    parts = urlsplit(value)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.username)
        and bool(parts.hostname)
        and parts.path.rstrip("/").rsplit("/", 1)[-1] != ""
    )
