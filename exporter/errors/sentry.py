"""Sentry reporting: sentry-sdk set up from `Settings`, events scrubbed, tagged and fingerprinted
exactly as the local store groups them."""

from __future__ import annotations

from typing import Any

from exporter.config import Settings
from exporter.errors.event import event_from_exception
from exporter.errors.scrub import FILTERED, SECRET_KEY_HINTS, is_secret_key, scrub_text, scrub_value
from exporter.trace import current_trace_id

# Where a frame points is not data. (Its source lines are scrubbed: credentials do get
# hard-coded.)
_LOCATION_KEYS = frozenset({"abs_path", "filename", "module", "function", "package", "fingerprint"})
# Added to sentry-sdk's own denylist (which it applies before `before_send`).
EXTRA_DENYLIST = (
    "set-cookie", "x-api-key", "api-key", "access_token", "refresh_token", "id_token",
    "client_secret", "dsn", "sentry_dsn", "database_url", "pwd", *SECRET_KEY_HINTS,
)
_enabled = False


def release_of(settings: Settings) -> str:
    """The release name events carry: `EXPORTER_RELEASE`, else the package version."""
    if settings.release:
        return settings.release
    from exporter import __version__

    return __version__


def init_sentry(settings: Settings) -> bool:
    """Start sentry-sdk when `EXPORTER_SENTRY_DSN` is set; returns whether it is on.

    Events are sent by sentry-sdk's background worker through a bounded queue, so an
    unreachable or slow Sentry costs a request only the event's preparation, never the network.
    """
    global _enabled
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.environment,
        release=release_of(settings),
        traces_sample_rate=settings.sentry_traces_sample_rate,
        profiles_sample_rate=settings.sentry_profiles_sample_rate,
        # send_default_pii is left at its default, off: sentry-sdk >= 2.5x deprecates passing
        # it, and its successor `data_collection` would switch the EventScrubber off.
        event_scrubber=EventScrubber(
            denylist=[*DEFAULT_DENYLIST, *EXTRA_DENYLIST], recursive=True
        ),
        before_send=before_send,  # type: ignore[arg-type]
        integrations=[
            StarletteIntegration(transaction_style="url"),
            FastApiIntegration(transaction_style="url"),
        ],
        shutdown_timeout=2,
    )
    _enabled = True
    return True


def shutdown_sentry(timeout: float = 2.0) -> None:
    """Send what sentry-sdk still holds (within `timeout`) and turn it off (idempotent)."""
    global _enabled
    if not _enabled:
        return
    _enabled = False
    import sentry_sdk

    sentry_sdk.get_client().close(timeout=timeout)


def sentry_enabled() -> bool:
    """True once `init_sentry` has started sentry-sdk in this process."""
    return _enabled


def report(exc: BaseException, context: dict[str, Any] | None = None) -> None:
    """Send `exc` to Sentry (with scrubbed extra context); a no-op when Sentry is off."""
    if not _enabled:
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        if context:
            scope.set_context("exporter", scrub_value(context))
        sentry_sdk.capture_exception(exc)


def tag_request(trace_id: str | None, route: str | None) -> None:
    """Put the request's trace id and route on its Sentry scope.

    sentry-sdk reports an unhandled exception from its ASGI wrapper, outside our middleware,
    where the trace id's context variable is already reset; the request's isolation scope is
    still the same object there.
    """
    if not _enabled:
        return
    import sentry_sdk

    scope = sentry_sdk.get_isolation_scope()
    if trace_id is not None:
        scope.set_tag("trace_id", trace_id)
    if route is not None:
        scope.set_tag("route", route)


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Tag with trace id and route, set our fingerprint, and scrub what sentry-sdk left."""
    try:
        exc_info = hint.get("exc_info")
        if exc_info and exc_info[1] is not None:
            event["fingerprint"] = [event_from_exception(exc_info[1]).fingerprint]
        tags = event.setdefault("tags", {})
        trace_id = current_trace_id()
        if trace_id is not None:
            tags["trace_id"] = trace_id
        source = (event.get("transaction_info") or {}).get("source")
        if "route" not in tags and event.get("transaction") and source in ("route", "url"):
            tags["route"] = event["transaction"]
        _scrub_in_place(event)
    except Exception:
        # Better no event than one that may hold a secret.
        return None
    return event


def _scrub_in_place(node: Any, depth: int = 0) -> None:
    if depth > 30:
        return
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if isinstance(key, str) and key in _LOCATION_KEYS:
                continue
            if isinstance(key, str) and is_secret_key(key) and value is not None:
                node[key] = FILTERED
            elif isinstance(value, str):
                node[key] = scrub_text(value)
            else:
                _scrub_in_place(value, depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, str):
                node[index] = scrub_text(value)
            else:
                _scrub_in_place(value, depth + 1)
