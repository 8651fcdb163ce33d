"""What to probe, as configured: named dependency URLs and queue URLs, parsed once (the settings
validate them with the same functions), with passwords kept apart."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, quote, unquote, unquote_plus, urlsplit

# URL scheme -> dependency kind (the `kind` label).
DEPENDENCY_KINDS: dict[str, str] = {
    "redis": "redis",
    "rediss": "redis",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
}
DATABASE_KINDS = frozenset({"postgresql", "mysql", "sqlite", "duckdb"})
# URL scheme -> queue backend (the `backend` label).
QUEUE_BACKENDS: dict[str, str] = {
    "redis": "redis",
    "rediss": "redis",
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# Query parameters that carry a credential: libpq's password and sslpassword, redis-py's
# password, PyMySQL's passwd, and the like.
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
REDACTED = "***"
ENCODE_HINT = (
    "an '@' follows the host part of the URL: percent-encode '/', '?', '#' and '@' in the "
    "password (%2F, %3F, %23, %40), and any other '@' as %40"
)


def _misplaced_at(url: str, parts: SplitResult) -> bool:
    """True when an '@' comes after the authority that `urlsplit` found.

    An unencoded '/', '?' or '#' in a password ends the authority early, and the rest of the
    password then reads as path, query or fragment: no part of such a URL may be shown. A URL
    without an authority (`sqlite:///a@b.db`) is a path and may hold an '@'.
    """
    has_authority = not url.partition("://")[2].startswith("/")
    return has_authority and "@" in parts.path + parts.query + parts.fragment


def _secret_params(query: str) -> list[tuple[str, str]]:
    """(key, raw value) of each query parameter that carries a credential."""
    found = []
    for pair in query.split("&"):
        key, sep, value = pair.partition("=")
        if sep and value and _SECRET_PARAM.search(unquote_plus(key)):
            found.append((key, value))
    return found


def redact_url(url: str) -> str:
    """`url` with its password and password-like query values replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if _misplaced_at(url, parts):
        return f"{parts.scheme}://{REDACTED}"
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{REDACTED}@{netloc.rpartition('@')[2]}"
    secret = {key for key, _ in _secret_params(query)}
    if secret:
        query = "&".join(
            f"{pair.partition('=')[0]}={REDACTED}" if pair.partition("=")[0] in secret else pair
            for pair in query.split("&")
        )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return parts._replace(netloc=netloc, query=query).geturl()


def _secrets_of(parts: SplitResult) -> tuple[str, ...]:
    raw = [value for _, value in _secret_params(parts.query)]
    if parts.password:
        raw.append(parts.netloc.rpartition("@")[0].partition(":")[2])
    found: set[str] = set()
    for value in raw:
        for decoded in (unquote(value), unquote_plus(value)):
            found |= {value, decoded, quote(decoded, safe="")}
    return tuple(found - {""})


def _check_host(what: str, url: str, parts: SplitResult) -> None:
    """Refuse a URL whose host part cannot be trusted; messages never show a password."""
    if _misplaced_at(url, parts):
        raise ValueError(f"{what}: {ENCODE_HINT}")
    if not parts.hostname:
        raise ValueError(f"{what}: no host in {redact_url(url)!r}")
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{what}: port must be a number from 1 to 65535 in {redact_url(url)!r}")


@dataclass(frozen=True)
class Dependency:
    """One named dependency to probe; `url` holds the password, never show it."""

    name: str
    kind: str
    url: str = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def safe_url(self) -> str:
        """The URL with its password replaced by `***`."""
        return redact_url(self.url)


@dataclass(frozen=True)
class Queue:
    """One queue to measure: a Redis list or stream, or a RabbitMQ queue."""

    backend: str
    queue: str
    url: str = field(repr=False)  # the server URL without the queue part
    vhost: str = "/"
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def safe_url(self) -> str:
        """The server URL with its password replaced by `***`."""
        return redact_url(self.url)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret replaced by `***` (driver messages may echo a DSN)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def parse_dependency(name: str, url: str) -> Dependency:
    """A `Dependency` for `name=url`; `ValueError` (password-free) when either is bad."""
    if not _NAME.match(name):
        raise ValueError(
            f"dependency name {name!r} must be 1-64 letters, digits, '_', '.', ':' or '-'"
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"dependency {name!r}: unparsable URL") from None
    kind = DEPENDENCY_KINDS.get(parts.scheme.lower())
    if kind is None:
        raise ValueError(
            f"dependency {name!r}: unknown scheme {parts.scheme!r} in {redact_url(url)!r}; "
            f"allowed: {', '.join(sorted(DEPENDENCY_KINDS))}"
        )
    if kind in ("sqlite", "duckdb"):
        if not parts.path or parts.netloc:
            raise ValueError(
                f"dependency {name!r}: {kind} URLs look like {kind}:///path/to/file "
                f"(got {redact_url(url)!r})"
            )
    else:
        _check_host(f"dependency {name!r}", url, parts)
    return Dependency(name, kind, url, _secrets_of(parts))


def parse_queue(url: str) -> Queue:
    """A `Queue` for `redis://host:port/db/queue` or `amqp://user:pw@host:port/vhost/queue`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError("unparsable queue URL") from None
    backend = QUEUE_BACKENDS.get(parts.scheme.lower())
    shown = redact_url(url)
    if backend is None:
        raise ValueError(
            f"queue {shown!r}: unknown scheme {parts.scheme!r}; "
            f"allowed: {', '.join(sorted(QUEUE_BACKENDS))}"
        )
    _check_host(f"queue {shown!r}", url, parts)
    segments = parts.path.split("/")[1:]
    if backend == "redis":
        if len(segments) < 2 or not segments[0].isdigit() or not "/".join(segments[1:]):
            raise ValueError(f"queue {shown!r}: expected redis://host:port/<db>/<queue>")
        queue = unquote("/".join(segments[1:]))
        server = parts._replace(path=f"/{segments[0]}", fragment="").geturl()
        return Queue(backend, queue, server, "/", _secrets_of(parts))
    if len(segments) != 2 or not segments[1]:
        raise ValueError(
            f"queue {shown!r}: expected amqp://user:password@host:port/<vhost>/<queue> "
            "(vhost '/' is written %2F)"
        )
    vhost = unquote(segments[0]) or "/"
    server = parts._replace(path="/" + quote(vhost, safe=""), fragment="").geturl()
    return Queue(backend, unquote(segments[1]), server, vhost, _secrets_of(parts))


def parse_queues(urls: Iterable[str]) -> list[Queue]:
    """A `Queue` per URL; `ValueError` naming both when two have the same backend and name.

    Metrics, health checks and the history know a queue by (backend, queue) only, so two such
    queues (on two Redis DBs, servers or vhosts) would overwrite each other's readings.
    """
    queues: list[Queue] = []
    seen: dict[tuple[str, str], str] = {}
    for url in urls:
        queue = parse_queue(url)
        key = (queue.backend, queue.queue)
        if key in seen:
            raise ValueError(
                f"queues {redact_url(seen[key])!r} and {redact_url(url)!r} are both "
                f"{queue.backend}/{queue.queue}; queues are told apart by backend and name "
                "only, so list one of them"
            )
        seen[key] = url
        queues.append(queue)
    return queues


def _refuse_duplicate_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, url in pairs:
        if name in found:
            raise ValueError(f"dependency name {name!r} is given twice")
        found[name] = url
    return found


def parse_dependency_map(value: Any) -> dict[str, str]:
    """Accept a JSON object or `name=url,name=url` for the dependencies setting."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        if text.startswith("{"):
            try:
                loaded = json.loads(text, object_pairs_hook=_refuse_duplicate_names)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a valid JSON object ({exc.msg})") from None
            if not isinstance(loaded, dict):
                raise ValueError("must be a JSON object of name: URL")
            return {str(k): str(v) for k, v in loaded.items()}
        pairs: list[tuple[str, Any]] = []
        for item in text.split(","):
            name, sep, url = item.strip().partition("=")
            if not sep or not name.strip():
                raise ValueError("expected name=url pairs separated by commas, or a JSON object")
            pairs.append((name.strip(), url.strip()))
        return _refuse_duplicate_names(pairs)
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    raise ValueError("must be a JSON object of name: URL or name=url pairs")
