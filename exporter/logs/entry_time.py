"""The time of an entry sent to the ingestion API: its own, never moved, and refused when Loki
would refuse it (older than its maximum age) or when it is too far ahead of this clock."""

from __future__ import annotations

from datetime import datetime, timezone


class TimestampRefused(ValueError):
    """An entry's timestamp is out of the accepted window; the message says which way."""


def _span(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} seconds"


def entry_time(stamp: datetime | None, now: float, max_age: float, max_skew: float) -> float:
    """`stamp` in seconds since the epoch (without a zone: UTC), or `now` when there is none;
    `TimestampRefused` ("timestamp: ...") when it is more than `max_age` seconds old or more
    than `max_skew` seconds ahead of `now`."""
    if stamp is None:
        return now
    when = (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()
    if when < now - max_age:
        raise TimestampRefused(
            f"timestamp: older than {_span(max_age)} (EXPORTER_LOG_ENTRY_MAX_AGE_SECONDS): "
            "Loki would refuse it")
    if when > now + max_skew:
        raise TimestampRefused(
            f"timestamp: more than {_span(max_skew)} ahead of this server's clock "
            "(EXPORTER_LOG_ENTRY_MAX_SKEW_SECONDS)")
    return when
