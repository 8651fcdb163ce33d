"""The `sentry` health check: is Sentry taking the error events this process sends?"""

from __future__ import annotations

import time

from exporter.errors.sentry import sentry_delivery, sentry_enabled
from exporter.health.check import Check

SENTRY_FAILURE_MEMORY = 600.0  # s: a failure older than this, with nothing sent since, is past


def sentry_check(now: float | None = None) -> Check | None:
    """Sentry, when this process reports to it: degraded while its latest attempt to deliver an
    error event failed (why, how many events lost since when), healthy again once one is
    delivered, or when the failure is SENTRY_FAILURE_MEMORY old and nothing was sent since.
    Each process has its own Sentry client: the answering one is judged."""
    if not sentry_enabled():
        return None
    now = time.time() if now is None else now
    check = Check("sentry", "reporting", checked_at=now)
    failure = sentry_delivery()
    if failure is None:
        return check
    check.details.update(reason=failure.reason, events_lost=failure.events,
                         failing_since=failure.since, last_failure=failure.at)
    ago = now - failure.at
    if ago > SENTRY_FAILURE_MEMORY:
        check.reasons.append(f"last delivery failed {ago / 60:.0f} min ago ({failure.reason}); "
                             "nothing sent since")
        return check
    since = time.strftime("%H:%M:%S UTC", time.gmtime(failure.since))
    check.worsen("degraded", f"Sentry did not take {failure.events} error "
                             f"event{'s' if failure.events != 1 else ''} since {since}: "
                             f"{_SENTRY_REASONS.get(failure.reason, failure.reason)}")
    return check


_SENTRY_REASONS = {
    "network_error": "cannot connect",
    "timeout": "no answer in time",
    "http_4xx": "refused (4xx)",
    "http_5xx": "server error (5xx)",
    "sentry_rate_limited": "rate-limited by Sentry",
    "transport_queue_full": "sentry-sdk's send queue is full",
}
