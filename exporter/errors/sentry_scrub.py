"""Scrubbing what goes to Sentry: sentry-sdk's `EventScrubber` first (its denylist extended with
ours, and our names judged word by word), then our pass over the whole event, whose free text
(messages, exception values, query strings, URLs) it does not read."""

from __future__ import annotations

from typing import Any

from exporter.errors.scrub import FILTERED, is_secret_key, scrub_text

# Where a frame points is not data. (Its source lines are scrubbed: credentials do get
# hard-coded.)
_LOCATION_KEYS = frozenset({"abs_path", "filename", "module", "function", "package", "fingerprint"})
# Added to sentry-sdk's own denylist (which it applies before `before_send`): its entries are
# exact names, and the common ones it lacks are here.
EXTRA_DENYLIST = (
    "key", "passphrase", "passcode", "pwd", "secret_key", "access_key", "access_key_id",
    "secret_access_key", "private_key", "credential", "signature", "sig", "api_key", "api-key",
    "x-api-key", "x-auth-token", "client_secret", "access_token", "refresh_token", "id_token",
    "session_token", "x-amz-security-token", "x-amz-signature", "x-amz-credential", "jwt", "otp",
    "set-cookie", "sid", "dsn", "sentry_dsn", "database_url",
)


class Denylist(list[str]):
    """sentry-sdk's denylist of exact (lower-cased, `-` as `_`) names, which also holds every
    name `is_secret_key` judges a secret: `EventScrubber` only asks it `name in denylist`."""

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or (isinstance(name, str) and is_secret_key(name))


def event_scrubber() -> Any:
    """sentry-sdk's `EventScrubber` (recursive), denying its names, ours, and every name
    `is_secret_key` judges a secret."""
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    scrubber = EventScrubber(denylist=[*DEFAULT_DENYLIST, *EXTRA_DENYLIST], recursive=True)
    scrubber.denylist = Denylist(scrubber.denylist)  # normalised and with the PII names by now
    return scrubber


def scrubbed_request(raw: dict[str, Any]) -> dict[str, Any]:
    """Sentry's request interface from the raw ASGI parts: secret headers and values removed."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw["headers"]:
        name = raw_name.decode("latin-1")
        headers[name] = FILTERED if is_secret_key(name) else scrub_text(raw_value.decode("latin-1"))
    host = headers.get("host", "localhost")
    return {
        "method": raw["method"],
        "url": scrub_text(f"{raw['scheme']}://{host}{raw['root_path']}{raw['path']}"),
        "query_string": scrub_text(raw["query_string"].decode("latin-1")),
        "headers": headers,
    }


def scrub_event(node: Any, depth: int = 0) -> None:
    """Scrub an event in place: secret names' values become `[Filtered]`, strings are scrubbed
    (what sentry-sdk's scrubber replaced already stays as it marked it)."""
    if depth > 30:
        return
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if isinstance(key, str) and key in _LOCATION_KEYS:
                continue
            if isinstance(value, str):
                node[key] = FILTERED if isinstance(key, str) and is_secret_key(key) else \
                    scrub_text(value)
            elif isinstance(value, (dict, list)):
                if isinstance(key, str) and is_secret_key(key):
                    node[key] = FILTERED
                else:
                    scrub_event(value, depth + 1)
            elif isinstance(value, (int, float)) and isinstance(key, str) and is_secret_key(key):
                node[key] = FILTERED
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, str):
                node[index] = scrub_text(value)
            else:
                scrub_event(value, depth + 1)
