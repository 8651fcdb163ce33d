"""Recording rules: request rate, error ratio and latency quantiles per service and per route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Aggregation levels: the rule name's first part, and the labels it keeps.
LEVELS: dict[str, tuple[str, ...]] = {
    "service": ("service",),
    "service_route": ("service", "route"),
}
QUANTILES: tuple[int, ...] = (50, 95, 99)
ERROR_STATUS = 'status=~"5.."'
RECORDING_GROUP = "exporter-http-recording"


@dataclass(frozen=True)
class RecordingNames:
    """Rule names (`level:metric:operations`); the rate window is part of each name."""

    window: str

    def requests(self, level: str) -> str:
        """Requests per second."""
        return f"{level}:http_requests:rate{self.window}"

    def errors(self, level: str) -> str:
        """5xx responses per second."""
        return f"{level}:http_request_errors:rate{self.window}"

    def error_ratio(self, level: str) -> str:
        """Share of responses that are 5xx, 0..1."""
        return f"{level}:http_request_errors:ratio_rate{self.window}"

    def buckets(self, level: str) -> str:
        """Histogram bucket rates, kept for quantiles over any grouping."""
        return f"{level}:http_request_duration_seconds_bucket:rate{self.window}"

    def quantile(self, level: str, q: int) -> str:
        """The q-th percentile of request duration, in seconds."""
        return f"{level}:http_request_duration_seconds:p{q}_{self.window}"


def recording_group(names: RecordingNames) -> dict[str, Any]:
    """The one rule group of `prometheus/rules/recording.yml`."""
    w = names.window
    rules: list[dict[str, str]] = []
    for level, labels in LEVELS.items():
        by = ", ".join(labels)
        rules += [
            {"record": names.requests(level),
             "expr": f"sum by ({by}) (rate(http_requests_total[{w}]))"},
            {"record": names.errors(level),
             "expr": f"sum by ({by}) (rate(http_requests_total{{{ERROR_STATUS}}}[{w}]))"},
            # `or ... * 0`: a service without a single 5xx yet reads 0 %, not "no data".
            {"record": names.error_ratio(level),
             "expr": f"({names.errors(level)} or {names.requests(level)} * 0)"
                     f" / {names.requests(level)}"},
            {"record": names.buckets(level),
             "expr": f"sum by ({by}, le) (rate(http_request_duration_seconds_bucket[{w}]))"},
        ]
        rules += [
            {"record": names.quantile(level, q),
             "expr": f"histogram_quantile({q / 100:g}, {names.buckets(level)})"}
            for q in QUANTILES
        ]
    return {"name": RECORDING_GROUP, "rules": rules}
