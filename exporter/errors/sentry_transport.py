"""What became of the error events sentry-sdk's transport tried to deliver to Sentry.

sentry-sdk sends events from its own worker thread and tells its transport what it lost
through two overridable methods of `HttpTransport`, which its maintainers point users to for
exactly this (getsentry/sentry-python#2457: subclass `HttpTransport`, pass the class as the
`transport` option): `record_lost_event(reason, data_category, item)` (the public method of
`Transport` behind Sentry's client reports), once per lost item, and `on_dropped_event(reason)`,
once per envelope, called first and inside the `except` block of a failed request, so it knows
the HTTP status (`status_500`) and the exception (a timeout or a refused connection), where
`record_lost_event` only says `network_error`. Neither hook hears of a delivered envelope, nor
of a 429 (sentry-sdk leaves that loss to Sentry's own outcomes): those two outcomes are read in
`_handle_response(response, envelope)`, the one place the SDK sees each answer; the tests pin
that contract (tests/test_errors_sentry_delivery.py) so an SDK upgrade that renames it fails there.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Why the transport did not deliver an error event (errors_sentry_dropped_total{reason}):
# the connection failed (refused, reset, DNS, TLS); the request timed out; Sentry answered
# 4xx (413: too large included) or 5xx; Sentry rate-limits us (a 429, and the events dropped
# while its Retry-After or X-Sentry-Rate-Limits lasts); sentry-sdk's own send queue was full.
DELIVERY_REASONS = (
    "network_error", "timeout", "http_4xx", "http_5xx", "sentry_rate_limited",
    "transport_queue_full",
)
# sentry-sdk's reasons for a lost item that are about delivery; the others ("before_send",
# "event_processor", "sample_rate"...) are decisions taken before the transport.
_SDK_REASONS = {
    "send_error": "http_4xx",  # 413
    "ratelimit_backoff": "sentry_rate_limited",
    "queue_overflow": "transport_queue_full",
}
_EVENT_CATEGORIES = frozenset({"error", "default"})  # exceptions and messages, not transactions


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """Sentry's latest failed delivery, as long as no error event was delivered after it."""

    reason: str  # one of DELIVERY_REASONS
    at: float  # when (time.time()) the latest failure happened
    since: float  # when the first failure after the last delivery happened
    events: int  # error events lost since the last delivery


class DeliveryLog:
    """Counts undelivered error events through `on_drop(reason, events)` and remembers the
    latest failure until an error event is delivered."""

    def __init__(self, on_drop: Callable[[str, int], None] | None = None) -> None:
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._failure: DeliveryFailure | None = None

    def failed(self, reason: str, events: int) -> None:
        """`events` error events were not delivered, for `reason`."""
        now = time.time()
        with self._lock:
            previous = self._failure
            self._failure = DeliveryFailure(
                reason, now, previous.since if previous else now,
                events + (previous.events if previous else 0),
            )
        if self._on_drop is not None and events:
            self._on_drop(reason, events)

    def delivered(self) -> None:
        """Sentry accepted an envelope holding an error event."""
        with self._lock:
            self._failure = None

    def failure(self) -> DeliveryFailure | None:
        """The latest failure, or None when the latest attempt delivered (or none failed)."""
        return self._failure


def _reason_of(sdk_reason: str) -> str | None:
    """Our reason for one of sentry-sdk's `on_dropped_event` reasons."""
    if sdk_reason == "network":  # called inside the `except` block of the failed request
        return "timeout" if _is_timeout(sys.exc_info()[1]) else "network_error"
    if sdk_reason.startswith("status_") and sdk_reason[7:].isdigit():
        status = int(sdk_reason[7:])
        if status == 429:
            return "sentry_rate_limited"
        return "http_5xx" if status >= 500 else "http_4xx"
    return None


def _is_timeout(exc: BaseException | None) -> bool:
    from urllib3.exceptions import NewConnectionError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    cause = getattr(exc, "reason", None) or exc  # urllib3's MaxRetryError wraps the cause
    # NewConnectionError (refused, unreachable) derives from ConnectTimeoutError in urllib3 2.
    if isinstance(cause, NewConnectionError):
        return False
    return isinstance(cause, (TimeoutError, Urllib3Timeout))


def _events_in(envelope: Any) -> int:
    return sum(1 for item in envelope.items if item.data_category in _EVENT_CATEGORIES)


def transport_class(log: DeliveryLog, timeout: int | None = None) -> type[Any]:
    """sentry-sdk's `HttpTransport`, reporting each error event's fate to `log` (pass it as the
    `transport` option of `sentry_sdk.init`); `timeout`: seconds per request (None: the SDK's,
    30 s)."""
    from sentry_sdk.transport import HttpTransport

    class DeliveryTransport(HttpTransport):
        TIMEOUT = HttpTransport.TIMEOUT if timeout is None else timeout
        _why = threading.local()  # the envelope's reason, from on_dropped_event, per thread

        def on_dropped_event(self, reason: str) -> None:
            super().on_dropped_event(reason)
            self._why.reason = _reason_of(reason)

        def record_lost_event(
            self, reason: str, data_category: Any = None, item: Any = None, *,
            quantity: int = 1,
        ) -> None:
            super().record_lost_event(reason, data_category, item, quantity=quantity)
            category = item.data_category if item is not None else data_category
            if category not in _EVENT_CATEGORIES:
                return
            ours = _SDK_REASONS.get(reason)
            if reason == "network_error":  # a failed request or a 4xx/5xx answer
                ours = getattr(self._why, "reason", None) or "network_error"
            if ours is not None:
                log.failed(ours, 1 if item is not None else quantity)

        def _handle_response(self, response: Any, envelope: Any) -> None:
            super()._handle_response(response, envelope)
            if envelope is None:
                return
            events = _events_in(envelope)
            if events and 200 <= response.status < 300:
                log.delivered()
            elif events and response.status == 429:
                log.failed("sentry_rate_limited", events)

    return DeliveryTransport
