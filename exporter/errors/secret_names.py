"""Which names of fields, headers, query parameters and cookies hold a secret.

A name is split into words (`X-Api-Key`, `apiKey`, `API_KEY` and `api.key` are all `api key`)
and judged word by word, so that `auth`, `key`, `token` and `session` are secrets while
`author`, `keyboard`, `monkey`, `tokenizer`, `sessionless` and `keyword` are not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A word that is one of these, or ends with one (`dbpassword`, `xapikey`, `csrftoken`,
# `phpsessid`), names a secret.
SECRET_ENDINGS: tuple[str, ...] = (
    "password", "passwd", "passphrase", "passcode", "pwd", "secret", "secrets", "token",
    "tokens", "cookie", "cookies", "credential", "credentials", "signature", "signatures",
    "apikey", "accesskey", "secretkey", "privatekey", "sessionkey", "signingkey", "authkey",
    "sessionid", "sessid", "dsn",
)
# A word that is one of these, whole, names a secret (`auth` but not `author`, `session` but
# not `sessionless` nor `sessions`).
SECRET_WORDS: frozenset[str] = frozenset({
    "auth", "authorization", "session", "sid", "sig", "jwt", "bearer", "otp", "creds", "csrf",
    "xsrf",
})
# `key` is a secret as the last word (`key`, `api_key`, `private_key`, `x-api-key`) or before
# `id` (`access_key_id`), except after one of these, where it names a record, not a secret.
PLAIN_KEYS: frozenset[str] = frozenset({
    "public", "cache", "sort", "primary", "foreign", "partition", "idempotency", "routing",
    "object", "lookup", "dedup", "dedupe", "hash", "range", "row", "group", "map", "dict",
    "index", "unique", "composite", "natural", "surrogate", "shard", "sharding", "message",
    "translation", "i18n", "config", "setting", "settings", "registry", "redis", "s3", "bucket",
    "storage", "search", "column", "field", "table", "join", "lock", "queue", "stream",
})
# A last word that says what a secret is like (its length, type, version, expiry...), so the
# value is not the secret: `signature_version`, `token_type`, `password_min_length`,
# `session_timeout`, `key_size`.
PROPERTY_WORDS: frozenset[str] = frozenset({
    "count", "length", "len", "size", "type", "kind", "version", "algorithm", "alg", "method",
    "scheme", "ttl", "timeout", "expiry", "expires", "expiration", "lifetime", "age", "at",
    "policy", "format", "strength", "required", "enabled", "name", "names",
})
# `max_tokens`, `prompt_tokens`: a language model's token counts.
_TOKEN_COUNTS = frozenset({
    "max", "min", "num", "total", "prompt", "completion", "input", "output", "context",
})
_TOKEN_WORDS = frozenset({"token", "tokens"})
# Words: runs of capitals before a capitalised word (`API` in `APIKey`), capitalised or
# lower-case runs, runs of capitals, digits. Anything else separates.
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# Substrings (of the lower-cased text) without which no name can be a secret: what free text
# is searched for before anything slower runs. Few and short, for speed: every secret word
# holds one (a test checks it).
HINTS: tuple[str, ...] = (
    "pass", "pwd", "secret", "token", "cookie", "cred", "sig", "key", "sess", "sid", "auth",
    "dsn", "jwt", "bearer", "otp", "csrf", "xsrf",
)


def words_of(name: str) -> list[str]:
    """`name` as lower-case words: `X-Api-Key` and `xApiKey` are both `['x', 'api', 'key']`."""
    return [word.lower() for word in _WORD.findall(name)]


class SecretNames:
    """The judge of names: the built-in secret words, plus `extra` names (each matched as whole
    words, or as the ending of a word: `ssn` catches `user_ssn`, `userSsn` and `userssn`)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.extra = tuple(sorted({"_".join(words_of(name)) for name in extra} - {""}))
        self._extra_endings = tuple(name.replace("_", "") for name in self.extra)
        self.hints = (*HINTS, *self._extra_endings)

    def is_secret(self, name: str) -> bool:
        """True when a field, header, parameter or cookie called `name` holds a secret."""
        words = words_of(name)
        if not words:
            return False
        last = words[-1]
        if len(words) > 1 and last in PROPERTY_WORDS:
            return False
        if last in _TOKEN_WORDS and words[0] in _TOKEN_COUNTS:
            return False
        for word in words:
            if word in SECRET_WORDS or word.endswith(SECRET_ENDINGS):
                return True
        if last == "pass":  # `db_pass`, `pass`; not `pass_through`
            return True
        if "key" in words and _key_is_secret(words):
            return True
        return bool(self.extra) and self._is_extra(words)

    def _is_extra(self, words: list[str]) -> bool:
        joined = "_" + "_".join(words) + "_"
        if any("_" + name + "_" in joined for name in self.extra):
            return True
        return any(word.endswith(self._extra_endings) for word in words)


def _key_is_secret(words: list[str]) -> bool:
    for index, word in enumerate(words):
        if word != "key":
            continue
        after = words[index + 1:]
        if index == 0:
            if not after:
                return True  # `key` itself (`?key=...`); `key_id`, `key_name` are not
            continue
        if (not after or after == ["id"]) and words[index - 1] not in PLAIN_KEYS:
            return True
    return False
