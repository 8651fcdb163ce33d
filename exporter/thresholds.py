"""`thresholds.yaml`: loaded and validated once; errors name the offending key."""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporter.config import Settings, SettingsError
from exporter.kubernetes_options import KubernetesOptions, is_absolute
from exporter.signals import CATALOGUE

PACKAGED_NAME = "thresholds.yaml"
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
# Slow requests start here when the thresholds file has no API latency threshold.
DEFAULT_SLOW_REQUEST_SECONDS = 0.5
# The signal whose threshold says where slow requests start.
API_LATENCY_SIGNAL = "http_latency_p95_seconds"
# The longest `for`: a condition held a week is an outage already; longer ones read as typos.
MAX_FOR_SECONDS = 7 * 86400


class ThresholdsError(SettingsError):
    """The thresholds file is missing or invalid; the message names the file and the key."""


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration (`30s`, `5m`, `1h30m`, `0s`)."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"not a duration like 30s, 5m or 1h30m (got {text!r})")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def format_duration(seconds: float) -> str:
    """The shortest Prometheus-style spelling of whole `seconds` (`300` -> `5m`)."""
    whole = int(seconds)
    if whole == 0:
        return "0s"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


class Threshold(BaseModel):
    """One alert condition: `signal > above` for at least `for_seconds`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    key: str = ""
    alert: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{0,63}$")
    signal: str = Field(description="a signal of the catalogue (docs/signals.md)")
    above: float = Field(strict=True, allow_inf_nan=False)  # strict: `true` is not 1.0
    for_seconds: float = Field(alias="for")
    severity: Literal["warning", "critical"]
    summary: str = Field(min_length=1, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _no_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "key" in data:  # the mapping key is the key
            raise ValueError("key: not a field (the entry's name in 'thresholds' is its key)")
        return data

    @field_validator("for_seconds", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError("must be a duration like 30s, 5m or 1h30m")
        seconds = parse_duration(value) if isinstance(value, str) else float(value)
        if not 0 <= seconds <= MAX_FOR_SECONDS:
            raise ValueError(
                f"must be from 0s to {format_duration(MAX_FOR_SECONDS)} (got {value!r})"
            )
        return seconds

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str) -> str:
        if value not in CATALOGUE:
            raise ValueError(f"unknown signal {value!r}; known: {', '.join(CATALOGUE.names())}")
        return value

    @model_validator(mode="after")
    def _value_in_unit(self) -> Threshold:
        unit = CATALOGUE.get(self.signal).unit
        if unit == "ratio" and not 0.0 < self.above <= 1.0:
            raise ValueError(f"above: a ratio must be in (0, 1] (got {self.above})")
        if unit != "ratio" and self.above <= 0.0:
            what = "seconds" if unit == "seconds" else "the value"
            raise ValueError(f"above: {what} must be positive (got {self.above})")
        return self


class RenderOptions(BaseModel):
    """How `exporter render` writes rules and links; every field has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_window: str = Field("5m", description="range of the recording rules' rate()")
    grafana_url: str = Field("http://localhost:3000", pattern=r"^https?://\S+[^/]$")
    runbook_url: str = Field("docs/runbooks.md", pattern=r"^\S+$")
    kubernetes: KubernetesOptions = Field(
        default_factory=lambda: KubernetesOptions.model_validate({}))

    @field_validator("runbook_url")
    @classmethod
    def _runbook_link(cls, value: str) -> str:
        # An absolute address opens from Slack and e-mail; a path (the shipped default) is
        # shown as text. Anything else would be a link that cannot open.
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value) and not is_absolute(value):
            raise ValueError(f"must be an http(s) address with a host, or a path in the "
                             f"repository such as docs/runbooks.md (got {value!r})")
        return value

    @field_validator("rate_window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a duration like 30s, 5m or 1h30m")
        seconds = parse_duration(value)
        if seconds < 1:
            raise ValueError(f"must be at least 1s (got {value!r})")
        return format_duration(seconds)


class Thresholds(BaseModel):
    """The whole file: a version, the thresholds by key, and render options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    thresholds: dict[str, Threshold] = Field(min_length=1)
    render: RenderOptions = Field(default_factory=lambda: RenderOptions.model_validate({}))

    @model_validator(mode="after")
    def _unique(self) -> Thresholds:
        seen: dict[str, str] = {}
        for key, threshold in self.thresholds.items():
            if not re.match(r"^[a-z][a-z0-9_]{0,63}$", key):
                raise ValueError(f"thresholds.{key}: keys are lower_snake_case")
            if threshold.alert in seen:
                raise ValueError(
                    f"thresholds.{key}.alert: {threshold.alert!r} is also used by "
                    f"thresholds.{seen[threshold.alert]}"
                )
            seen[threshold.alert] = key
        return self

    def items(self) -> list[Threshold]:
        """Every threshold, with its key filled in."""
        return [t.model_copy(update={"key": k}) for k, t in self.thresholds.items()]

    def for_signal(self, signal: str) -> list[Threshold]:
        """The thresholds that watch the signal named `signal`."""
        return [t for t in self.items() if t.signal == signal]


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error["msg"]).removeprefix("Value error, ")
    if loc:
        if message.startswith("above:"):  # raised by the model validator: point at the key
            loc, message = f"{loc}.above", message.removeprefix("above:").strip()
        return f"{loc}: {message}"
    return message


def parse_thresholds(text: str, source: str = PACKAGED_NAME) -> Thresholds:
    """Validate YAML text; `ThresholdsError` naming `source` and the key on any problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise ThresholdsError(
            f"{source}: not valid YAML{where}" + (f" ({problem})" if problem else "")
        ) from None
    if not isinstance(data, dict):
        raise ThresholdsError(f"{source}: expected a mapping with 'version' and 'thresholds'")
    try:
        return Thresholds.model_validate(data)
    except ValidationError as exc:
        text = "; ".join(_describe(dict(err)) for err in exc.errors())
        raise ThresholdsError(f"{source}: {text}") from None


def packaged_text() -> str:
    """The default thresholds shipped inside the package (a copy of the repository's file)."""
    return resources.files("exporter").joinpath(PACKAGED_NAME).read_text(encoding="utf-8")


def load_thresholds(path: Path | None = None) -> Thresholds:
    """Thresholds from `path` (EXPORTER_THRESHOLDS_FILE), else the packaged default."""
    if path is None:
        return parse_thresholds(packaged_text(), f"{PACKAGED_NAME} (packaged default)")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdsError(
            f"EXPORTER_THRESHOLDS_FILE: cannot read {str(path)!r} ({exc.strerror})"
        ) from None
    return parse_thresholds(text, str(path))


def api_latency_seconds(thresholds: Thresholds) -> float:
    """The lowest threshold on the API latency (`api_latency.above` in the shipped file), or
    `DEFAULT_SLOW_REQUEST_SECONDS` when there is none: where slow requests start."""
    found = [t.above for t in thresholds.for_signal(API_LATENCY_SIGNAL)]
    return min(found) if found else DEFAULT_SLOW_REQUEST_SECONDS


@functools.lru_cache(maxsize=16)
def api_latency_seconds_of_file(path: Path | None = None) -> float:
    """`api_latency_seconds` of the file at `path` (the packaged one when None), read once:
    the access log asks for every request."""
    return api_latency_seconds(load_thresholds(path))


def slow_request_seconds(settings: Settings, thresholds: Thresholds | None = None) -> float:
    """Seconds from which a request is slow (slow_requests_*.log, /logs/slow-requests).

    EXPORTER_SLOW_REQUEST_SECONDS when set; else the API latency threshold of `thresholds`
    (when given: the ones in use), else of EXPORTER_THRESHOLDS_FILE or the packaged
    thresholds.yaml (`api_latency.above`, read once per file). Raises `ThresholdsError`
    when that file is bad.
    """
    if settings.slow_request_seconds is not None:
        return settings.slow_request_seconds
    if thresholds is not None:
        return api_latency_seconds(thresholds)
    return api_latency_seconds_of_file(settings.thresholds_file)
