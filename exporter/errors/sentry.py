"""Sentry reporting: sentry-sdk set up from `Settings`; events scrubbed, tagged with the trace id
and route, and fingerprinted exactly as the local store groups them.

Process-wide by nature: sentry-sdk keeps one client per process (`sentry_sdk.init`), so the
reporting in front of it (the thread that prepares events, the event budget, where drops are
counted) is one `_Reporting` per process too, set by `init_sentry()` and cleared by
`shutdown_sentry()` only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter._version import __version__
from exporter.config import Settings
from exporter.errors.event import CAPTURED_MARK, event_from_exception
from exporter.errors.sentry_scrub import event_scrubber, scrub_event, scrubbed_request
from exporter.errors.sentry_trace import adopt_current_trace, continue_trace
from exporter.errors.sentry_transport import (
    DELIVERY_REASONS,
    DeliveryFailure,
    DeliveryLog,
    transport_class,
)
from exporter.errors.worker import BackgroundWorker

# Why a captured error did not reach Sentry (errors_sentry_dropped_total{reason}): ours, before
# sentry-sdk (over EXPORTER_SENTRY_EVENTS_PER_SECOND, within GROUP_INTERVAL of the group's last
# event, our report queue full), then the transport's (DELIVERY_REASONS).
DROP_REASONS = ("rate_limited", "group_interval", "queue_full", *DELIVERY_REASONS)

# Events waiting for preparation hold their exception (and its frames) alive: keep few.
_MAX_QUEUED = 1000
# One group sends at most one event per interval: in a storm of one error Sentry gets samples
# (the local store and `exceptions_total` keep the exact counts).
GROUP_INTERVAL = 1.0
_MAX_GROUPS_TRACKED = 10_000

_on_reporter_thread = threading.local()


@dataclass(frozen=True, slots=True)
class SentryReport:
    """One exception to send, with what the request's context knew about it."""

    exc: BaseException
    fingerprint: str
    tags: dict[str, str]
    context: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    trace: tuple[str, str] | None = None  # (trace id, span id): see trace_context()


class _EventBudget:
    """A token bucket: at most `rate` events per second on average, bursts of `burst`; and
    at most one event per group per `GROUP_INTERVAL` seconds.

    Preparing an event costs about a millisecond of CPU in this process; with a burst of
    failures (or a Sentry that never answers, whose own queue then drops what we prepared)
    that would tax every request. Sentry receives a sample; the local store counts them all.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._stamp = burst, time.monotonic()
        self._lock = threading.Lock()
        self._group_sent: dict[str, float] = {}

    def take(self, group: str) -> str | None:
        """None when an event of `group` may be sent now, else the reason it may not."""
        with self._lock:
            now = time.monotonic()
            last = self._group_sent.get(group)
            if last is not None and now - last < GROUP_INTERVAL:
                return "group_interval"
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1.0:
                return "rate_limited"
            self._tokens -= 1.0
            if len(self._group_sent) >= _MAX_GROUPS_TRACKED:
                self._group_sent.clear()
            self._group_sent[group] = now
            return None


@dataclass(frozen=True, slots=True)
class _Reporting:
    """What stands in front of sentry-sdk's client while Sentry is on in this process."""

    reporter: BackgroundWorker  # prepares the events off the request path
    budget: _EventBudget
    delivery: DeliveryLog  # what became of the events sentry-sdk's transport sent
    on_drop: Callable[[str, int], None] | None

    def dropped(self, reason: str, events: int = 1) -> None:
        if self.on_drop is not None:
            self.on_drop(reason, events)


_reporting: _Reporting | None = None


def release_of(settings: Settings) -> str:
    """The release name events carry: `EXPORTER_RELEASE`, else the package version."""
    if settings.release:
        return settings.release
    return __version__


def init_sentry(
    settings: Settings, on_drop: Callable[[str, int], None] | None = None
) -> bool:
    """Start sentry-sdk when `EXPORTER_SENTRY_DSN` is set; returns whether it is on.
    `on_drop(reason, events)` hears of the errors that do not reach Sentry (DROP_REASONS).

    Our middleware, log handler and `capture_exception` report errors; a background thread
    prepares the events (about a millisecond each) and sentry-sdk's own worker sends them, so
    an unreachable or slow Sentry never holds up a request. sentry-sdk's Starlette and FastAPI
    integrations cost every request a few hundred microseconds (bench/sentry_overhead.py), so
    they are enabled only when tracing is asked for (`EXPORTER_SENTRY_TRACES_SAMPLE_RATE` > 0).
    """
    global _reporting
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations import Integration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.modules import ModulesIntegration

    tracing = settings.sentry_traces_sample_rate > 0
    delivery = DeliveryLog(on_drop)
    # Logged exceptions reach Sentry through our log handler (with our fingerprint). Log
    # breadcrumbs are off too: without a scope per request they would mix requests, and the
    # trace id leads to the request's own log lines instead.
    integrations: list[Integration] = [LoggingIntegration(level=None, event_level=None)]
    if tracing:
        from sentry_sdk.integrations.fastapi import FastApiIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration

        integrations += [StarletteIntegration(transaction_style="url"),
                         FastApiIntegration(transaction_style="url")]
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.environment,
        release=release_of(settings),
        traces_sample_rate=settings.sentry_traces_sample_rate if tracing else None,
        profiles_sample_rate=settings.sentry_profiles_sample_rate if tracing else None,
        # send_default_pii is left at its default, off: sentry-sdk >= 2.5x deprecates passing
        # it, and its successor `data_collection` would switch the EventScrubber off.
        event_scrubber=event_scrubber(),
        # Local variables hold secrets under any name; they are not sent. Source lines are
        # re-read from disk for every frame of every event (about 15 ms an event for a FastAPI
        # stack): the store's samples and the line numbers locate the code instead.
        include_local_variables=False,
        include_source_context=False,
        before_send=before_send,  # type: ignore[arg-type]
        integrations=integrations,
        auto_enabling_integrations=False,
        disabled_integrations=[ModulesIntegration()],  # every installed package, on every event
        shutdown_timeout=2,
        transport=transport_class(delivery),
    )
    budget = _EventBudget(settings.sentry_events_per_second,
                          max(1.0, settings.sentry_events_per_second * 5))
    reporter = BackgroundWorker(
        _send, name="sentry", max_queued=_MAX_QUEUED,
        on_drop=lambda: reporting.dropped("queue_full"),
    )
    _reporting = reporting = _Reporting(reporter, budget, delivery, on_drop)
    return True


def sentry_enabled() -> bool:
    """True while `init_sentry` has sentry-sdk on in this process."""
    return _reporting is not None


def sentry_delivery() -> DeliveryFailure | None:
    """Sentry's latest failure to take an error event (`reason`, one of DELIVERY_REASONS;
    `at`, `since`: time.time() of the latest and of the first failure in a row; `events` lost
    since), as long as no error event was delivered after it. None when Sentry is off, nothing
    failed, or the latest error event sent was delivered. Read-only; cheap."""
    reporting = _reporting
    return None if reporting is None else reporting.delivery.failure()


def report(report: SentryReport) -> bool:
    """Queue `report` for Sentry; False when Sentry is off, over its budget or the queue is full."""
    reporting = _reporting
    if reporting is None:
        return False
    refused = reporting.budget.take(report.fingerprint)
    if refused is not None:
        reporting.dropped(refused)
        return False
    return reporting.reporter.submit(report)


def shutdown_sentry(timeout: float = 2.0) -> None:
    """Prepare and send what is queued (within `timeout`), then turn Sentry off. Idempotent."""
    global _reporting
    reporting, _reporting = _reporting, None
    if reporting is None:
        return
    import sentry_sdk

    reporting.reporter.stop(timeout)
    sentry_sdk.get_client().close(timeout=timeout)
    # The process's scopes outlive the client, and their propagation contexts keep the sampling
    # context made from it: a client started later would send it, naming this one's project.
    for scope in (sentry_sdk.get_current_scope(), sentry_sdk.get_isolation_scope(),
                  sentry_sdk.get_global_scope()):
        scope.set_new_propagation_context()


def _send(batch: list[SentryReport]) -> None:
    import sentry_sdk

    _on_reporter_thread.active = True
    try:
        for item in batch:
            with sentry_sdk.new_scope() as scope:
                scope.fingerprint = [item.fingerprint]
                for key, value in item.tags.items():
                    scope.set_tag(key, value)
                if item.context:
                    scope.set_context("exporter", item.context)
                if item.request:
                    scope.add_event_processor(_add_request(scrubbed_request(item.request)))
                if item.trace is not None:
                    continue_trace(scope, item.trace)
                else:  # its own trace, and a sampling context made from this client (the
                    # process-long isolation scope keeps one made from the first client)
                    scope.set_new_propagation_context()
                sentry_sdk.capture_exception(item.exc)
    finally:
        _on_reporter_thread.active = False


def _add_request(request: dict[str, Any]) -> Callable[[Any, Any], Any]:
    def processor(event: Any, hint: Any) -> Any:
        event.setdefault("request", {}).update(request)
        return event

    return processor


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Fingerprint, tag and scrub every event; drop the duplicates of our own reports."""
    try:
        exc_info = hint.get("exc_info")
        exc = exc_info[1] if exc_info else None
        ours = getattr(_on_reporter_thread, "active", False)
        if not ours and exc is not None and getattr(exc, CAPTURED_MARK, False):
            return None  # sentry-sdk's integration saw an exception our reporter sends
        if exc is not None and not event.get("fingerprint"):
            event["fingerprint"] = [event_from_exception(exc).fingerprint]
        tags = event.setdefault("tags", {})
        if not ours:
            # An event sentry-sdk captured itself (the app called sentry_sdk.capture_*, or its
            # integrations did) inside a request or task: our trace, as for our own reports.
            adopt_current_trace(event, tags)
        source = (event.get("transaction_info") or {}).get("source")
        if "route" not in tags and event.get("transaction") and source in ("route", "url"):
            tags["route"] = event["transaction"]
        scrub_event(event)
    except Exception:
        # Better no event than one that may hold a secret.
        return None
    return event
