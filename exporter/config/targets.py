"""What the sidecar scrapes: `/metrics` URLs of instrumented apps, from a list or a file_sd file.

`EXPORTER_TARGETS` takes URLs (`http://10.0.0.5:8000/metrics`; `http://10.0.0.5:8000` or
`10.0.0.5:8000` mean its /metrics) as a comma list or a JSON list. `EXPORTER_TARGETS_FILE`
takes a file in the shape of Prometheus' file_sd (JSON or YAML): a list of
`{"targets": [...], "labels": {...}}`, where `__scheme__` and `__metrics_path__` set the URL
as in Prometheus and the other labels describe the target (shown beside it). Parsing is pure:
the scraping lives in health/scrape.py and health/targets.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

_HOST_PORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Target:
    """One `/metrics` URL; `instance` is how its values are labelled (host:port, as in
    Prometheus), `labels` what the file_sd entry said about it."""

    url: str
    instance: str
    labels: dict[str, str] = field(default_factory=dict)


def parse_target(text: str, labels: dict[str, str] | None = None) -> Target:
    """A target from a URL or host:port; `ValueError` naming the value when it is neither."""
    value = text.strip()
    labels = dict(labels or {})
    if _HOST_PORT.match(value):
        scheme = labels.pop("__scheme__", "http")
        path = labels.pop("__metrics_path__", "/metrics")
        value = f"{scheme}://{value}{path}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not a /metrics URL (http://host:port/metrics) or host:port")
    if parts.username or parts.password:
        raise ValueError(f"{parts.hostname}: credentials in a target URL are not supported")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"{text!r}: the port is not a number from 1 to 65535") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    path = parts.path
    if path in ("", "/"):  # a bare address means its /metrics, as Prometheus' default
        path = "/metrics"
        value = f"{parts.scheme}://{parts.netloc}{path}" + (f"?{parts.query}" if parts.query
                                                            else "")
    instance = f"{host}:{port}" + ("" if path == "/metrics" else path)
    return Target(value, instance, {k: v for k, v in labels.items() if not k.startswith("__")})


def parse_targets(value: Any) -> list[Target]:
    """Targets from a comma list, a JSON list of URLs, or a list; duplicates are refused."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a valid JSON list ({exc.msg})") from None
        else:
            value = [part for part in text.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("a comma list or a JSON list of /metrics URLs")
    return _unique(parse_target(v) for v in value)


def parse_file_sd(text: str, source: str) -> list[Target]:
    """Targets of a file_sd file's text; `ValueError` naming `source` and the entry."""
    try:
        data = yaml.safe_load(text) if text.strip() else []
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid JSON or YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a list of {{targets: [...], labels: {{...}}}}")
    found = []
    for index, group in enumerate(data):
        where = f"{source}: entry {index}"
        if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
            raise ValueError(f"{where}: needs 'targets', a list of host:port")
        labels = group.get("labels") or {}
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and _LABEL.match(k) and isinstance(v, str)
                for k, v in labels.items()):
            raise ValueError(f"{where}: 'labels' must map label names to strings")
        for target in group["targets"]:
            if not isinstance(target, str):
                raise ValueError(f"{where}: a target is not a string ({target!r})")
            try:
                found.append(parse_target(target, labels))
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
    return _unique(found)


def _unique(targets: Iterable[Target]) -> list[Target]:
    seen: dict[str, Target] = {}
    for target in targets:
        if target.instance in seen:
            raise ValueError(f"{target.instance} is listed twice")
        seen[target.instance] = target
    return list(seen.values())
