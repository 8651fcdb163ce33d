"""The generated Grafana dashboards. Each signal's panels, with the threshold line from
thresholds.yaml, come from the catalogue (`signal_panels`); what is not a signal (requests in
progress, probe durations, consumers...) is added here."""

from __future__ import annotations

from typing import Any

from exporter.render.dashboards_logs import alerts_dashboard, logs_dashboard
from exporter.render.grafana import dashboard, panel, prom, query_variable, row
from exporter.render.header import HEADER
from exporter.render.links import DASHBOARDS
from exporter.render.signal_panels import route_panels, series_panels, stat_panels
from exporter.render.variables import variables
from exporter.signals import Quantile, Rate, http_names
from exporter.signals.http_names import gauge_sum, rate_sum
from exporter.thresholds import Thresholds

_S = 'service=~"$service"'
_SI = 'service=~"$service", instance=~"$instance"'
_ST = 'service=~"$service", task=~"$task"'


def _titled(panels: list[dict[str, Any]], title: str) -> dict[str, Any]:
    return next(p for p in panels if p["title"] == title)


def _service(t: Thresholds, description: str) -> dict[str, Any]:
    window = t.render.rate_window
    series = series_panels(t, "service", window)
    latency = _titled(series, "Latency p50 / p95 / p99")
    buckets = Rate(http_names.DURATION_BUCKETS, keep=("le",))
    latency["targets"].append({**prom(
        Quantile(0.95, buckets).promql("$__rate_interval", ("service",), _SI),
        "{{service}} p95 (exemplars: trace ids)",
        exemplar=True), "refId": chr(ord("A") + len(latency["targets"]))})
    latency["description"] = ("The red line is the API latency threshold; exemplar dots link "
                              "to the logs of that request.")
    panels = [
        *stat_panels(t, "service", window),
        panel("Requests in progress",
              [prom(f"sum({gauge_sum(http_names.IN_PROGRESS, ('service',), _SI)})")],
              kind="stat", width=6, height=4),
        *series,
        panel("Requests in progress",
              [prom(gauge_sum(http_names.IN_PROGRESS, ("service", "instance"), _SI),
                    "{{service}} {{instance}}")]),
        row("Per route"),
        *route_panels(t, "service", window),
        panel("Responses by route and status",
              [prom(rate_sum(http_names.REQUESTS, ("service", "route", "status"),
                             "$__rate_interval", _SI, 'route=~"$route"'),
                    "{{service}} {{route}} {{status}}")],
              unit="reqps", width=24),
    ]
    return dashboard(*DASHBOARDS["service"], description, panels,
                     variables("service", "route", "instance", window=window))


def _host(t: Thresholds, description: str) -> dict[str, Any]:
    window = t.render.rate_window
    stats = stat_panels(t, "host", window)
    for stat in stats:
        stat["gridPos"]["w"] = 8
    panels = [
        *stats,
        *series_panels(t, "host", window),
        panel("Load per core (1 min)",
              [prom(f"system_load1{{{_SI}}} / on (instance) group_left system_cpu_cores"
                    f"{{{_SI}}}", "{{instance}}")],
              description="Above 1 means runnable work is waiting for a CPU."),
    ]
    return dashboard(*DASHBOARDS["host"], description, panels, variables("service", "instance"))


def _dependencies(t: Thresholds, description: str) -> dict[str, Any]:
    window = t.render.rate_window
    series = series_panels(t, "dependencies", window)
    queue = _titled(series, "Queue depth")
    panels = [
        panel("Dependency up", [prom(f"dependency_up{{{_SI}}}", "{{name}} ({{kind}})")],
              kind="stat", width=24, height=4, description="1 = the last probe succeeded."),
        *(p for p in series if p is not queue),
        panel("Probe duration p95",
              [prom("histogram_quantile(0.95, sum by (name, kind, le) (rate("
                    f"dependency_probe_duration_seconds_bucket{{{_SI}}}[$__rate_interval])))",
                    "{{name}} ({{kind}})")], unit="s", width=24),
        row("Queues"),
        queue,
        panel("Queue growth (messages/s over 10m)",
              [prom(f"deriv(queue_depth{{{_SI}}}[10m])", "{{backend}} {{queue}}")],
              threshold=0.0),
        panel("Consumers", [prom(f"queue_consumers{{{_SI}}}", "{{backend}} {{queue}}")]),
        panel("Pending (delivered, not acknowledged)",
              [prom(f"queue_pending{{{_SI}}}", "{{backend}} {{queue}} {{group}}")]),
        panel("Queue reachable", [prom(f"queue_up{{{_SI}}}", "{{backend}} {{queue}}")],
              kind="stat", width=24, height=4),
    ]
    return dashboard(*DASHBOARDS["dependencies"], description, panels,
                     variables("service", "instance"))


def _celery(t: Thresholds, description: str) -> dict[str, Any]:
    window = t.render.rate_window
    panels = [
        *stat_panels(t, "celery", window),
        panel("Tasks running", [prom(f"sum(celery_tasks_in_progress{{{_ST}}})")], kind="stat",
              width=6, height=4),
        panel("Workers", [prom(f"sum(celery_workers{{{_S}}})")], kind="stat", width=6,
              height=4),
        panel("Tasks per second by state",
              [prom(f"sum by (state) (rate(celery_tasks_total{{{_ST}}}[$__rate_interval]))",
                    "{{state}}")], unit="ops"),
        *series_panels(t, "celery", window),
        panel("Tasks running by task",
              [prom(f"sum by (task) (celery_tasks_in_progress{{{_ST}}})", "{{task}}")]),
        panel("Queue depth (waiting messages)",
              [prom(f"queue_depth{{{_S}}}", "{{backend}} {{queue}}")],
              description="Celery's queues, as configured in the app (task_queues)."),
        panel("Queue growth (messages/s over 10m)",
              [prom(f"deriv(queue_depth{{{_S}}}[10m])", "{{backend}} {{queue}}")],
              threshold=0.0),
    ]
    service = query_variable("service", "label_values(celery_tasks_total, service)", "service")
    return dashboard(*DASHBOARDS["celery"], description, panels,
                     [service, *variables("task")])


def dashboards(thresholds: Thresholds) -> dict[str, dict[str, Any]]:
    """File stem -> dashboard JSON document."""
    return {
        "service-overview": _service(thresholds, HEADER),
        "host": _host(thresholds, HEADER),
        "dependencies-queues": _dependencies(thresholds, HEADER),
        "logs": logs_dashboard(thresholds, HEADER),
        "alerts-errors": alerts_dashboard(thresholds, HEADER),
        "celery": _celery(thresholds, HEADER),
    }
