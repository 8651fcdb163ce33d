"""The Loki streams of one shipper: label sets with a bounded number of services, labelled as
promtail/ and alloy/ label them (`service`, `env`, `level`, `kind`). Each line keeps its own
timestamp: Loki takes out-of-order lines within a stream (since 2.4), so no line is ever moved
to keep a stream in order."""

from __future__ import annotations

from typing import Protocol

from exporter.errors.scrub import safe_str
from exporter.logs.formatter import scrub_text
from exporter.logs.push import Entry, Labels

__all__ = ["KINDS", "MAX_SERVICES", "Entry", "Streams"]

MAX_SERVICES = 100  # distinct `service` label values one shipper sends
_MAX_LABEL_SETS = 1000
_MAX_LABEL_CHARS = 128

# The `kind` label: which daily file a line is read from (app_*.log, access_*.log), the values
# promtail/promtail.yml and alloy/config.alloy give it. A handler's record is an `app` line.
KINDS = ("app", "access")


class _LabelSource(Protocol):
    service: str
    env: str
    static_labels: dict[str, str]


def _label_text(value: object) -> str:
    """A label value from whatever a caller passed as `service` (an int, a dict...)."""
    return scrub_text(safe_str(value)).strip()[:_MAX_LABEL_CHARS]


class Streams:
    """Label sets by (service, level, kind), read from `config` (service, env, static labels).

    Services come from callers (`extra=`, the ingestion API) and each is a Loki stream, so
    their number is bounded here, not by the callers: past `MAX_SERVICES` distinct names the
    configured service is used. Safe to call from any thread (a race may build a set twice).
    """

    def __init__(self, config: _LabelSource) -> None:
        self._config = config
        self._labels: dict[tuple[str, str, str], Labels] = {}
        self._services: set[str] = {config.service}

    def labels(self, service: object, level: str, kind: str = "app") -> Labels:
        """The label set of a line of `service` (any value, taken as text) at `level`, read
        from a file of `kind` (one of `KINDS`)."""
        if service is None or service == "":
            service = self._config.service
        elif not isinstance(service, str):
            service = _label_text(service) or self._config.service
        labels = self._labels.get((service, level, kind))
        return labels if labels is not None else self._make(service, level, kind)

    def _make(self, service: str, level: str, kind: str) -> Labels:
        if service not in self._services:
            if len(self._services) >= MAX_SERVICES:
                service = self._config.service
            else:
                self._services.add(service)
        key = (service, level, kind)
        labels = self._labels.get(key)
        if labels is None:
            merged = {**self._config.static_labels, "service": service,
                      "env": self._config.env, "level": level, "kind": kind}
            labels = tuple(sorted(merged.items()))
            if len(self._labels) < _MAX_LABEL_SETS:
                self._labels[key] = labels
        return labels

    def forget(self) -> None:
        """Drop the cached label sets (after the configuration changed)."""
        self._labels.clear()
