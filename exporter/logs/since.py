"""The forms a `since` (a moment) and a look-back (`window`) take, as regular expressions the
OpenAPI schema publishes and the parsers hold to: a text that matches is always understood, one
that does not is refused, so what the schema promises is what the API does.

The patterns use only what JSON Schema (ECMA 262), Python's `re` and pydantic's Rust engine read
alike: no look-around, `[0-9]` rather than `\\d` (which also matches other scripts' digits).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_N = "[0-9]{1,9}"
LOOKBACK_PATTERN = (
    f"^(?:{_N}[dD])?(?:{_N}[hH])?(?:{_N}[mM])?(?:{_N}[sS])?$"  # at least one: min_length 1
)
_EPOCH = "[0-9]{1,11}(?:\\.[0-9]{1,9})?"  # up to year 5138: a datetime holds it
# Years 0001-9999; days that exist in their month, 29 February in leap years only.
_YEAR = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_LEAP = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DATE = (
    f"(?:{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    f"|(?:0[13578]|1[02])-31)|{_LEAP}-02-29)"
)
# Fractions of 3 or 6 digits: what Python 3.10's datetime.fromisoformat reads.
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{3}(?:[0-9]{3})?)?)?"
_ZONE = "(?:[zZ]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
SINCE_PATTERN = (
    f"^(?:{_DATE}(?:[tT]{_TIME}{_ZONE}?)?|{_EPOCH}|(?:{_N}[dD])?(?:{_N}[hH])?(?:{_N}[mM])?"
    f"(?:{_N}[sS])?)$"
)
LOOKBACK_FORMS = "a look-back such as 30s, 15m, 2h, 1h30m or 1d"
SINCE_FORMS = (
    "an RFC 3339 or ISO 8601 time (2026-11-23T16:20:01Z; without a zone it is UTC, a date "
    f"alone is midnight UTC), epoch seconds (1700000000), or {LOOKBACK_FORMS}"
)
_LOOKBACK = re.compile(f"(?:({_N})d)?(?:({_N})h)?(?:({_N})m)?(?:({_N})s)?")
_SINCE = re.compile(SINCE_PATTERN)
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def parse_lookback(text: str) -> float | None:
    """Seconds of a look-back (`30s`, `15m`, `2h`, `1h30m`, `1d`; any case), None when `text`
    is not one."""
    match = _LOOKBACK.fullmatch(text.lower())
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def _before(now: datetime, seconds: float) -> datetime:
    try:
        return now - timedelta(seconds=seconds)
    except OverflowError:  # further back than a datetime goes: from the beginning
        return _EARLIEST


def parse_since(text: str, now: datetime) -> datetime:
    """The moment `since` names (see `SINCE_FORMS`; a look-back counts back from `now`); a
    ValueError with a readable message when `text` is none of the forms of SINCE_PATTERN."""
    if not text or _SINCE.fullmatch(text) is None:
        raise ValueError(f"expected {SINCE_FORMS}")
    seconds = parse_lookback(text)
    if seconds is not None:
        return _before(now, seconds)
    if re.fullmatch(_EPOCH, text):
        return datetime.fromtimestamp(float(text), timezone.utc)
    parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past what a datetime holds, and so on
        return _LATEST if parsed.year > 1 else _EARLIEST
