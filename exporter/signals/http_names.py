"""The HTTP metrics the signals read, under each naming they may come in.

- the kit's default names (`EXPORTER_HTTP_METRICS=default`): `http_requests_total`,
  `http_request_duration_seconds`, `http_requests_in_progress` by `method`, `route`, `status`;
- the OpenTelemetry HTTP conventions, which the kit publishes under
  `EXPORTER_HTTP_METRICS=semconv` and FastAPI's own telemetry writes through
  opentelemetry-exporter-prometheus: `http_server_request_duration_seconds` (its `_count` is the
  request count) by `http_request_method`, `http_route`, `http_response_status_code`, and
  `http_server_active_requests`. The exporter adds `otel_scope_*` labels, which every query
  sums away.

Every query takes the default names first and the conventions' only for a group (a service, a
route) that has none of them (`or on (...)`): a service that publishes both is counted once.
The dashboards' HTTP panels that are not signals (requests in progress, responses by status)
take their PromQL from here too.
"""

from __future__ import annotations

from exporter.signals.query import Metric, Op, Rate, summed

# Our label -> the conventions' label.
SEMCONV_LABELS = (
    ("method", "http_request_method"),
    ("route", "http_route"),
    ("status", "http_response_status_code"),
)
_SEMCONV_DURATION = "http_server_request_duration_seconds"


def _either(name: str, semconv: str, matchers: tuple[tuple[str, Op, str], ...] = (),
            semconv_matchers: tuple[tuple[str, Op, str], ...] = ()) -> Metric:
    return Metric(name, matchers, alternatives=(
        Metric(semconv, semconv_matchers, SEMCONV_LABELS),))


REQUESTS = _either("http_requests_total", f"{_SEMCONV_DURATION}_count")
ERRORS = _either("http_requests_total", f"{_SEMCONV_DURATION}_count",
                 (("status", "=~", "5.."),), (("http_response_status_code", "=~", "5.."),))
DURATION_BUCKETS = _either("http_request_duration_seconds_bucket", f"{_SEMCONV_DURATION}_bucket")
IN_PROGRESS = _either("http_requests_in_progress", "http_server_active_requests")


def gauge_sum(metric: Metric, by: tuple[str, ...], *selector: str) -> str:
    """`sum by (by) (metric{selector})` over each form, the first form that has a group winning."""
    return summed(metric, by, (), lambda form: form.selector(*selector))


def rate_sum(metric: Metric, by: tuple[str, ...], window: str, *selector: str) -> str:
    """`sum by (by) (rate(metric{selector}[window]))` over each form, as a signal writes it."""
    return Rate(metric).promql(window, by, *selector)
