"""Removing secrets from text and values: one implementation for the error store, Sentry and the
JSON log lines (which replace with `[redacted]` and may add keys of their own)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from exporter.errors.secret_names import SecretNames

FILTERED = "[Filtered]"

_MAX_DEPTH = 20
_MAX_VERDICTS = 10_000

# `scheme://user:password@host` keeps the user; `scheme://key@host` (a DSN) loses the key. The
# password runs to the last `@` before a space, quote, `?` or `#`, so an unencoded `@` or `/` in
# it does not leave a piece behind.
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s'\"@/:?#]*)"
    r"(?::(?P<password>[^\s'\"?#]*))?@(?=[^\s'\"@/?#]*(?:[/?#\s'\"]|$))"
)
# `Bearer <token>`, `Basic <base64>`, `Token <token>` (GitHub's scheme). The credential has a
# digit or one of `._~+/=-`, or 20 letters: `Basic setup done` and `the token expired` stay.
_CREDENTIAL = r"(?=[A-Za-z]*[0-9._~+/=-]|[A-Za-z]{20})[A-Za-z0-9._~+/=-]{8,}"
_SCHEME_CREDENTIALS = re.compile(rf"\b((?i:bearer|basic|token))\s+{_CREDENTIAL}")
# A JSON Web Token: base64url of `{"...` (header and payload), then the signature.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
# AWS access key ids: long-term (AKIA) and temporary (ASIA).
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
# A PEM private key, to its END line or, cut short, to the end of the text.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
# `name=`, `name:`, `"name": `: any name; whether it holds a secret is asked of SecretNames.
# Possessive (`++`): a word that is not followed by a separator is not retried letter by letter.
_NAME = re.compile(r"(?<![\w.-])(?P<key>[\w.-]++)[\"']?[ \t]*+[=:][ \t]*+")
# No text shorter than an AWS key id (20 characters) holds one, nor a JWT or a PEM block.
_SHORTEST_TOKEN = 20
# The value of a pair: a quoted one whole, to its closing quote (or the end of the line); a
# bare one up to a separator, with its scheme (`Authorization: Bearer ...`).
_VALUE = re.compile(
    r"(?P<quote>[\"'])(?:[^\n]*?(?P<close>(?P=quote))|[^\n]*)"
    r"|(?:(?i:bearer|basic|token)\s+)?[^\s&;,'\"}]+"
)


class Scrubber:
    """Replaces secrets with `replacement`: the values of fields whose name holds a secret
    (`SecretNames`: built-in words plus `names`) at any depth of dicts and other mappings
    (Starlette `Headers`, `MappingProxyType`...); and in free text, URL credentials,
    `name=value` / `name: value` / `"name": "value"` pairs (query strings included) with such a
    name (a quoted value is replaced whole, spaces included), Bearer/Basic/Token credentials,
    JSON Web Tokens, AWS access key ids and PEM private keys.
    """

    def __init__(self, replacement: str, names: Iterable[str] = ()) -> None:
        self.replacement = replacement
        self.names = SecretNames(names)
        self._hint = re.compile("|".join(map(re.escape, self.names.hints)))
        self._verdicts: dict[str, bool] = {}

    def is_secret(self, key: str) -> bool:
        """True when a field, header or parameter named `key` holds a secret."""
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self.names.is_secret(key)
            if len(self._verdicts) >= _MAX_VERDICTS:  # bounded: names come from callers
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict

    def text(self, text: str) -> str:
        """`text` with every secret pattern replaced (see the class)."""
        if not text:
            return text
        # Cheap substring tests first: most strings hold none of this, and the regexes are slower.
        if len(text) >= _SHORTEST_TOKEN:
            if "-----BEGIN " in text:
                text = _PRIVATE_KEY.sub(self._private_key, text)
            if "eyJ" in text:
                text = _JWT.sub(self.replacement, text)
            if "AKIA" in text or "ASIA" in text:
                text = _AWS_KEY_ID.sub(self.replacement, text)
        if "@" in text and "://" in text:
            text = _URL_CREDENTIALS.sub(self._url, text)
        lowered = text.lower()
        if "bearer" in lowered or "basic" in lowered or "token" in lowered:
            text = _SCHEME_CREDENTIALS.sub(lambda m: m.group(1) + " " + self.replacement, text)
        if ("=" in text or ":" in text) and self._hint.search(lowered):
            text = self._pairs(text)
        return text

    def _private_key(self, match: re.Match[str]) -> str:
        kind = match.group("kind")
        return (f"-----BEGIN {kind}PRIVATE KEY-----{self.replacement}"
                f"-----END {kind}PRIVATE KEY-----")

    def _url(self, match: re.Match[str]) -> str:
        user, password = match.group("user"), match.group("password")
        if password is None:  # scheme://key@host: the key is the secret
            return match.group("scheme") + self.replacement + "@" if user else match.group(0)
        return match.group("scheme") + user + ":" + self.replacement + "@"

    def _pairs(self, text: str) -> str:
        """`text` with the values of its secret `name=value` pairs replaced."""
        parts: list[str] = []
        done = 0
        # Names are found one after another, values are not skipped: the value of a pair that
        # is no secret may hold one that is (`monkey:password=x`).
        for name in _NAME.finditer(text):
            if name.start() < done or not self.is_secret(name.group("key")):
                continue
            value = _VALUE.match(text, name.end())
            if value is None:  # nothing after the separator
                continue
            quote = value.group("quote") or ""
            closing = quote if value.group("close") is not None else ""
            parts += (text[done:name.end()], quote, self.replacement, closing)
            done = value.end()
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)

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


_errors = Scrubber(FILTERED)


def is_secret_key(key: str) -> bool:
    """True when a field, header or parameter named `key` holds a secret."""
    return _errors.is_secret(key)


def scrub_text(text: str) -> str:
    """`text` with URL credentials, secret `name=value` pairs, Bearer/Basic/Token credentials,
    JWTs, AWS access key ids and PEM private keys replaced."""
    return _errors.text(text)


def scrub_value(value: Any) -> Any:
    """A copy of `value` (JSON-like) with secret keys filtered and every string scrubbed."""
    return _errors.value(value)
