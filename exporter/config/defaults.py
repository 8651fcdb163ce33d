"""Defaults and limits the settings share with the modules that apply them: the latency
histogram's buckets, the keys log lines redact, and the bound of the history ring."""

from __future__ import annotations

import math

# Dense around the 500 ms API latency threshold so that p95 near the threshold is read from
# narrow buckets (histogram_quantile interpolates linearly inside a bucket).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.75, 1.0, 2.5, 5.0, 10.0,
)
# The OpenTelemetry HTTP conventions' advisory boundaries (http.server.request.duration), used
# by EXPORTER_HTTP_METRICS=semconv unless EXPORTER_HISTOGRAM_BUCKETS is set.
SEMCONV_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)

# Names whose values log lines show as [redacted] beyond the built-in secret names
# (exporter/errors/secret_names.py, which always apply): EXPORTER_LOG_REDACT_KEYS.
DEFAULT_REDACT_KEYS: tuple[str, ...] = ()

# The most samples the ring keeps (2-4 kB each: a few hundred MB at the very most). An hour at
# the shortest interval (50 ms) or a week every 7 s fits; a week every 50 ms (12 million
# samples, tens of GB) does not.
MAX_SAMPLES = 100_000


def ring_length(window: float, interval: float) -> int:
    """Samples kept for `window` seconds at one per `interval` (both ends included)."""
    return max(2, math.ceil(window / interval) + 1)
