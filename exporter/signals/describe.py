"""A signal for people: its in-process computation in words, and the page docs/signals.md."""

from __future__ import annotations

from exporter.signals import http_names
from exporter.signals.model import Catalogue, Signal
from exporter.signals.query import Gauge, Quantile, Query, Rate, Ratio
from exporter.signals.rules import alert_value

_RATE = (
    "each counter series' increase since its previous sample (its whole value after a reset, "
    "nothing for its first sample) is added to a running total per instance{by}; the total's "
    "per-second rate over the window is extrapolated to the window's ends exactly as "
    "Prometheus' `rate()` does, then summed over instances"
)


def _by(labels: tuple[str, ...]) -> str:
    return "" if not labels else " and " + ", ".join(f"`{label}`" for label in labels)


def computation(query: Query) -> str:
    """How the in-process evaluation computes `query`, in one paragraph."""
    if isinstance(query, Gauge):
        subject = _by(query.subject).removeprefix(" and ")
        return ("the newest sample of each series" + (f", per {subject}" if subject else "")
                + "; with several instances, per instance for alerts (as the rule judges each "
                "series) and the highest for the overview")
    if isinstance(query, Rate):
        return _RATE.format(by=_by(query.subject))
    if isinstance(query, Ratio):
        return ("the numerator's and the denominator's rates as for a rate ("
                + _RATE.format(by=_by(query.subject)) + "), divided; 0 when the numerator has "
                "no series, nothing when the denominator is 0")
    assert isinstance(query, Quantile)
    return (f"the `le` buckets' rates as for a rate ({_RATE.format(by=_by(query.subject))}),"
            f" summed per bucket, then the {query.q:g}-quantile interpolated linearly inside "
            "the bucket that holds its rank, as `histogram_quantile()` does; nothing when the "
            "histogram saw no request in the window")


def _section(signal: Signal, window: str) -> list[str]:
    lines = [f"## `{signal.name}`", "", signal.description, ""]
    lines += [
        f"- **Title, unit:** {signal.title}, {signal.unit.replace('_', ' ')}",
        f"- **Health check:** `{signal.group}`"
        + (f"; one value per {', '.join(f'`{s}`' for s in signal.subject)}"
           if signal.subject else ""),
        f"- **Dashboard:** {signal.display.dashboard}, panel *{signal.display.panel}*",
    ]
    if signal.levels:
        levels = ", ".join(f"`{level.name}`" for level in signal.levels)
        lines.append(f"- **Recorded at levels:** {levels} (`prometheus/rules/recording.yml`)")
    lines += [
        "", "PromQL (the value an alert compares, as in `prometheus/rules/alerts.yml`):", "",
        "```promql", alert_value(signal, window), "```", "",
        "The same value in one expression, without recording rules (the sidecar's "
        "over-Prometheus mode runs it with a selector for the service):", "",
        "```promql", signal.promql(window), "```", "",
        f"In process: {computation(signal.query)}.", "",
    ]
    return lines


def _http_names() -> list[str]:
    rows = []
    for what, metric in (("requests", http_names.REQUESTS), ("5xx responses", http_names.ERRORS),
                         ("latency buckets", http_names.DURATION_BUCKETS),
                         ("in progress", http_names.IN_PROGRESS)):
        rows.append(f"| {what} | " + " | ".join(f"`{form.selector()}`" for form in metric.forms())
                    + " |")
    renamed = ", ".join(f"`{ours}` = `{theirs}`" for ours, theirs in http_names.SEMCONV_LABELS)
    return [
        "## HTTP metric names", "",
        "The HTTP signals read either naming (`exporter/signals/http_names.py`): the kit's "
        "default names, or the OpenTelemetry HTTP conventions', which the kit publishes with "
        "`EXPORTER_HTTP_METRICS=semconv` and FastAPI's own telemetry writes through "
        "opentelemetry-exporter-prometheus (with no kit middleware at all). The conventions' "
        f"labels are read as ours ({renamed}); `otel_scope_*` and other extra labels are "
        "summed away. A group (a service, a route) that has series under the default names "
        "is read from those only (`A or on (service) B`), so a service that publishes both is "
        "counted once; a service should not publish the conventions' names twice (the kit's "
        "`semconv` and FastAPI's exporter on one registry), as those would add up.", "",
        "| what | default | OpenTelemetry conventions |", "| --- | --- | --- |", *rows, "",
    ]


def signals_page(catalogue: Catalogue, window: str, header: str) -> str:
    """docs/signals.md: every signal of the catalogue, its PromQL and its in-process twin."""
    lines = [
        "# Signals", "", f"<!-- {header} Regenerate: exporter render -->", "",
        "Every signal is defined once, in `exporter/signals/builtin.py`. The Prometheus rules, "
        "the promtool tests, the Grafana panels, the sidecar's history, health checks, "
        "in-process alerts, status-page tiles and `/api/v1/observability/metrics` all derive "
        f"from that entry. Window: `{window}` (`render.rate_window` in `thresholds.yaml`).", "",
        "The in-process value equals Prometheus' on the same samples (tested against promtool "
        "with random series, restarts and failed scrapes included). While the window holds "
        "the first samples of a series (a route's first request, a process start), the two "
        "may differ by a few per cent: Prometheus extrapolates each series on its own.", "",
        "| signal | unit | check | subject |", "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| [`{s.name}`](#{s.name}) | {s.unit.replace('_', ' ')} | {s.group} | "
        f"{', '.join(s.subject) or '-'} |" for s in catalogue
    ]
    lines += ["", *_http_names()]
    for signal in catalogue:
        lines += _section(signal, window)
    return "\n".join(lines).rstrip() + "\n"
