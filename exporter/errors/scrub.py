"""Removing secrets from text and mappings before they reach the error store or Sentry."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FILTERED = "[Filtered]"

# A key whose lower-cased name contains one of these holds a secret; its value is dropped whole.
SECRET_KEY_HINTS: tuple[str, ...] = (
    "password", "passwd", "pwd", "secret", "token", "auth", "cookie", "session", "dsn",
    "api_key", "apikey", "api-key", "credential", "private_key", "privatekey", "signature",
)
_KEY_ALTERNATION = "|".join(re.escape(hint) for hint in SECRET_KEY_HINTS)

# `scheme://user:password@host` or `scheme://key@host` (a DSN): the user info is the secret.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@:'\"]+(:[^/\s@'\"]*)?@")
# `password=...`, `api_token: ...`, `"token": "..."`, `?access_token=...` inside free text.
_KEY_VALUE = re.compile(
    r"(?P<key>[\w.-]*(?:" + _KEY_ALTERNATION + r")[\w.-]*)(?P<sep>[\"']?\s*[=:]\s*[\"']?)"
    r"(?P<value>[^\s&;,'\"}]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """True when a field, header or parameter named `key` holds a secret."""
    lowered = key.lower()
    return any(hint in lowered for hint in SECRET_KEY_HINTS)


def scrub_text(text: str) -> str:
    """`text` with URL credentials, `key=value` secrets and bearer tokens replaced."""
    if not text:
        return text
    # Cheap substring tests first: most strings hold none of this, and the regexes are slower.
    if "@" in text and "://" in text:
        text = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + FILTERED + "@", text)
    lowered = text.lower()
    if any(hint in lowered for hint in SECRET_KEY_HINTS):
        text = _KEY_VALUE.sub(lambda m: m.group("key") + m.group("sep") + FILTERED, text)
    if "bearer" in lowered or "basic" in lowered or "token" in lowered:
        text = _BEARER.sub(lambda m: m.group(1) + " " + FILTERED, text)
    return text


def scrub_value(value: Any, depth: int = 0) -> Any:
    """A copy of `value` (JSON-like) with secret keys filtered and every string scrubbed."""
    if depth > 20:
        return FILTERED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            str(key): FILTERED if is_secret_key(str(key)) else scrub_value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [scrub_value(item, depth + 1) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return scrub_text(repr(value))
