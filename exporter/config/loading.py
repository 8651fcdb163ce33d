"""`load_settings()`: the settings from the environment, or a `SettingsError` naming each bad
variable and what it allows."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from exporter.config.settings import ENV_PREFIX, NAME_PATTERN, Settings

# Field names whose values must never be echoed back in an error message.
_SECRET_HINTS = (
    "token", "password", "secret", "dsn", "url", "auth", "dependencies", "queues", "targets",
)


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable and what is allowed."""


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    return ENV_PREFIX + field.upper()


_FORMATS = {
    "histogram_buckets": "; allowed: increasing seconds, comma-separated, e.g. 0.1,0.5,1",
    "metrics_path": "; allowed: a path such as /metrics (letters, digits, _ . / -)",
    "excluded_paths": "; allowed: paths or route templates, comma-separated, e.g. /healthz",
}


def _allowed(field: str) -> str:
    """A short phrase of the values `field` accepts, from its declared constraints."""
    info = Settings.model_fields.get(field)
    if info is None:
        return ""
    low = high = None
    for item in info.metadata:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
        if getattr(item, "pattern", None) == NAME_PATTERN:
            return "; allowed: 1-64 letters, digits, '_', '.', ':' or '-'"
    if low is not None and high is not None:
        return f"; allowed: {low} to {high}"
    return _FORMATS.get(field, "")


def _describe(error: dict[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error.get("loc"):  # a rule across settings: its message names them (not the values)
        return message
    field = str(error["loc"][0])
    if message.startswith("String should match pattern"):
        message = "not in the expected form"  # the regex itself helps nobody
    message += _allowed(field)
    if any(hint in field for hint in _SECRET_HINTS):
        return f"{env_name(field)}: {message}"
    return f"{env_name(field)}: {message} (got {error.get('input')!r})"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with `overrides` on top; raise `SettingsError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        text = "; ".join(_describe(dict(err)) for err in exc.errors())
        raise SettingsError(re.sub(r"\s+", " ", text)) from None


# EXPORTER_* names that are not settings but ours all the same.
NOT_SETTINGS = frozenset({"EXPORTER_REQUIRE_INTEGRATION"})  # the test suite's CI switch


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`EXPORTER_*` variables no setting reads, each with the closest setting's name when one is
    close ("EXPORTER_PROT: not a setting; did you mean EXPORTER_PORT?")."""
    fields = [field.upper() for field in Settings.model_fields]
    found = []
    for name in sorted(environ):
        rest = name.removeprefix(ENV_PREFIX)
        if rest == name or rest in fields or name in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(rest, fields, n=1, cutoff=0.75)  # the prefix aside
        found.append(f"{name}: not a setting" + (
            f"; did you mean {ENV_PREFIX}{close[0]}?" if close else
            " (docs/configuration.md lists them)"))
    return found
