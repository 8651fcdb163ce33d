"""Removing secrets from text and values: one implementation for the error store, Sentry and the
JSON log lines (which replace with `[redacted]` and may add keys of their own)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

FILTERED = "[Filtered]"

# A key whose lower-cased name (`-` read as `_`) contains one of these holds a secret; its value
# is dropped whole. (`auth` also catches `author`: a false alarm costs less than a leak.)
SECRET_KEY_HINTS: tuple[str, ...] = (
    "password", "passwd", "pwd", "secret", "token", "auth", "cookie", "session", "dsn",
    "api_key", "apikey", "credential", "private_key", "privatekey", "signature",
)
_MAX_DEPTH = 20
_MAX_VERDICTS = 10_000

# `scheme://user:password@host` keeps the user; `scheme://key@host` (a DSN) loses the key. The
# password runs to the last `@` before a space, quote, `?` or `#`, so an unencoded `@` or `/` in
# it does not leave a piece behind.
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s'\"@/:?#]*)"
    r"(?::(?P<password>[^\s'\"?#]*))?@(?=[^\s'\"@/?#]*(?:[/?#\s'\"]|$))"
)
_SCHEME_CREDENTIALS = re.compile(r"\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE)
_BARE_VALUE = r"[^\s&;,'\"}]+"


def _hint_pattern(hint: str) -> str:
    return re.escape(hint).replace("_", "[_-]")  # api_key matches api-key too


class Scrubber:
    """Replaces secrets with `replacement`: the values of keys that name one of `hints`, at
    any depth of dicts and other mappings (Starlette `Headers`, `MappingProxyType`...), and in
    free text URL credentials, `key=value` / `key: value` / `"key": "value"` pairs with such a
    key (a quoted value is replaced whole, spaces included), and Bearer/Basic/Token credentials.
    """

    def __init__(self, hints: Iterable[str], replacement: str) -> None:
        names = sorted({h.lower().replace("-", "_") for h in hints if h.strip()}, key=len,
                       reverse=True)
        alternation = "|".join(_hint_pattern(name) for name in names)
        self.replacement = replacement
        self._key = re.compile(alternation)
        self._pair = re.compile(
            rf"(?P<key>[\w.-]*(?:{alternation})[\w.-]*)(?P<sep>[\"']?\s*[=:]\s*)"
            # A quoted value goes whole, to its closing quote (or the end of the line); a bare
            # one up to a separator.
            rf"(?:(?P<quote>[\"'])(?:[^\n]*?(?P<close>(?P=quote))|[^\n]*)|{_BARE_VALUE})",
            re.IGNORECASE,
        )
        self._verdicts: dict[str, bool] = {}

    def is_secret(self, key: str) -> bool:
        """True when a field, header or parameter named `key` holds a secret."""
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._key.search(key.lower().replace("-", "_")) is not None
            if len(self._verdicts) < _MAX_VERDICTS:  # bounded: keys may come from callers
                self._verdicts[key] = verdict
        return verdict

    def text(self, text: str) -> str:
        """`text` with URL credentials, secret `key=value` pairs and scheme credentials replaced."""
        if not text:
            return text
        # Cheap substring tests first: most strings hold none of this, and the regexes are slower.
        if "@" in text and "://" in text:
            text = _URL_CREDENTIALS.sub(self._url, text)
        lowered = text.lower()
        if "bearer" in lowered or "basic" in lowered or "token" in lowered:
            text = _SCHEME_CREDENTIALS.sub(lambda m: m.group(1) + " " + self.replacement, text)
        if ("=" in text or ":" in text) and self._key.search(lowered):
            text = self._pair.sub(self._value_of_pair, text)
        return text

    def _url(self, match: re.Match[str]) -> str:
        user, password = match.group("user"), match.group("password")
        if password is None:  # scheme://key@host: the key is the secret
            return match.group("scheme") + self.replacement + "@" if user else match.group(0)
        return match.group("scheme") + user + ":" + self.replacement + "@"

    def _value_of_pair(self, match: re.Match[str]) -> str:
        quote = match.group("quote") or ""
        closing = quote if match.group("close") is not None else ""
        return match.group("key") + match.group("sep") + quote + self.replacement + closing

    def value(self, value: Any, depth: int = 0) -> Any:
        """A JSON-ready copy of `value`: secret keys replaced, every string scrubbed, mappings
        as dicts, sequences and sets as lists, NaN and ±Infinity as None, other objects as their
        scrubbed `repr`. Deeper than 20 levels, a container is replaced whole."""
        kind = type(value)  # the exact built-in types first: log lines are made of them
        if kind is str:
            return self.text(value)
        if kind is int or kind is bool or value is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, float):
            # Not JSON (Loki's `| json` refuses the line): null, as JSON.stringify writes them.
            return value if math.isfinite(value) else None
        if isinstance(value, (bool, int)):
            return value
        if depth >= _MAX_DEPTH:
            return self.replacement
        if kind is dict or isinstance(value, Mapping):
            try:
                items = list(value.items())  # a copy: another thread may add to it
            except Exception:  # a broken mapping: its repr, scrubbed
                return self.text(safe_repr(value))
            return self._items(items, depth)
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.value(item, depth + 1) for item in value]
        return self.text(safe_repr(value))

    def _items(self, items: list[tuple[Any, Any]], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        verdicts, text, replacement = self._verdicts, self.text, self.replacement
        for key, item in items:
            if type(key) is not str:
                key = str(key)
            secret = verdicts.get(key)
            if secret is None:
                secret = self.is_secret(key)
            if secret:
                out[key] = replacement
            elif type(item) is str:
                out[key] = text(item)
            else:
                out[key] = self.value(item, depth + 1)
        return out


def safe_str(value: Any) -> str:
    """`str(value)`, or a placeholder when its `__str__` raises."""
    try:
        return str(value)
    except Exception:  # a broken __str__ must not crash the caller
        return f"<unprintable {type(value).__name__}>"


def safe_repr(value: Any) -> str:
    """`repr(value)`, or a placeholder when its `__repr__` raises."""
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not crash the caller
        return f"<unrepresentable {type(value).__name__}>"


_errors = Scrubber(SECRET_KEY_HINTS, FILTERED)


def is_secret_key(key: str) -> bool:
    """True when a field, header or parameter named `key` holds a secret."""
    return _errors.is_secret(key)


def scrub_text(text: str) -> str:
    """`text` with URL credentials, `key=value` secrets and bearer tokens replaced."""
    return _errors.text(text)


def scrub_value(value: Any) -> Any:
    """A copy of `value` (JSON-like) with secret keys filtered and every string scrubbed."""
    return _errors.value(value)
