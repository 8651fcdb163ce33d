"""The five generated Grafana dashboards; threshold lines come from thresholds.yaml."""

from __future__ import annotations

from typing import Any

from exporter.config.dependencies import DATABASE_KINDS
from exporter.render.celery import celery_dashboard
from exporter.render.grafana import (
    dashboard,
    loki,
    panel,
    prom,
    query_variable,
    row,
    text_variable,
)
from exporter.render.header import HEADER
from exporter.render.links import DASHBOARDS
from exporter.render.recording import RecordingNames
from exporter.thresholds import Signal, Thresholds, api_latency_seconds

_S = 'service=~"$service"'
_SI = 'service=~"$service", instance=~"$instance"'
_SR = 'service=~"$service", route=~"$route"'
_DATABASES = "|".join(sorted(DATABASE_KINDS))


def _limit(thresholds: Thresholds, signal: Signal) -> float | None:
    """The lowest threshold on `signal` (the first line a panel should show), if any."""
    found = [t.above for t in thresholds.for_signal(signal)]
    return min(found) if found else None


def _variables(*names: str) -> list[dict[str, Any]]:
    known = {
        "service": query_variable("service", "label_values(up, service)", "service"),
        "instance": query_variable(
            "instance", f"label_values(up{{{_S}}}, instance)", "instance"),
        "route": query_variable(
            "route", f"label_values(http_requests_total{{{_S}}}, route)", "route"),
        "trace_id": text_variable("trace_id", "trace id"),
    }
    return [known[name] for name in names]


def _service(t: Thresholds, n: RecordingNames, description: str) -> dict[str, Any]:
    latency = _limit(t, Signal.http_latency_p95_seconds)
    errors = _limit(t, Signal.http_error_ratio)
    quantiles = [prom(f"{n.quantile('service', q)}{{{_S}}}", f"{{{{service}}}} p{q}")
                 for q in (50, 95, 99)]
    exemplars = prom(
        "histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket"
        f"{{{_SI}}}[$__rate_interval])))", "{{service}} p95 (exemplars: trace ids)", exemplar=True)
    panels = [
        panel("Requests per second", [prom(f"sum({n.requests('service')}{{{_S}}})")],
              kind="stat", unit="reqps", width=6, height=4),
        panel("Error ratio (5xx)", [prom(f"max({n.error_ratio('service')}{{{_S}}})")],
              kind="stat", unit="percentunit", threshold=errors, width=6, height=4),
        panel("Latency p95", [prom(f"max({n.quantile('service', 95)}{{{_S}}})")],
              kind="stat", unit="s", threshold=latency, width=6, height=4),
        panel("Requests in progress", [prom(f"sum(http_requests_in_progress{{{_SI}}})")],
              kind="stat", width=6, height=4),
        panel("Requests per second", [prom(f"{n.requests('service')}{{{_S}}}", "{{service}}")],
              unit="reqps"),
        panel("Error ratio (5xx)",
              [prom(f"{n.error_ratio('service')}{{{_S}}}", "{{service}}")],
              unit="percentunit", threshold=errors),
        panel("Latency p50 / p95 / p99", [*quantiles, exemplars], unit="s", threshold=latency,
              description="The red line is the API latency threshold; exemplar dots link to "
              "the logs of that request."),
        panel("Requests in progress",
              [prom(f"sum by (service, instance) (http_requests_in_progress{{{_SI}}})",
                    "{{service}} {{instance}}")]),
        row("Per route"),
        panel("Requests per second by route",
              [prom(f"{n.requests('service_route')}{{{_SR}}}", "{{service}} {{route}}")],
              unit="reqps"),
        panel("Error ratio by route",
              [prom(f"{n.error_ratio('service_route')}{{{_SR}}}", "{{service}} {{route}}")],
              unit="percentunit", threshold=errors),
        panel("Latency p95 by route",
              [prom(f"{n.quantile('service_route', 95)}{{{_SR}}}", "{{service}} {{route}}")],
              unit="s", threshold=latency),
        panel("Latency p99 by route",
              [prom(f"{n.quantile('service_route', 99)}{{{_SR}}}", "{{service}} {{route}}")],
              unit="s", threshold=latency),
        panel("Responses by route and status",
              [prom("sum by (route, status) (rate(http_requests_total"
                    f"{{{_SI}, route=~\"$route\"}}[$__rate_interval]))", "{{route}} {{status}}")],
              unit="reqps", width=24),
    ]
    return dashboard(*DASHBOARDS["service"], description, panels,
                     _variables("service", "route", "instance"))


def _host(t: Thresholds, description: str) -> dict[str, Any]:
    cpu = _limit(t, Signal.cpu_usage_ratio)
    memory = _limit(t, Signal.memory_usage_ratio)
    disk = _limit(t, Signal.disk_usage_ratio)
    panels = [
        panel("CPU", [prom(f"max(system_cpu_usage_ratio{{{_SI}}})")], kind="stat",
              unit="percentunit", threshold=cpu, width=8, height=4),
        panel("Memory", [prom(f"max(system_memory_usage_ratio{{{_SI}}})")], kind="stat",
              unit="percentunit", threshold=memory, width=8, height=4),
        panel("Fullest disk", [prom(f"max(system_disk_usage_ratio{{{_SI}}})")], kind="stat",
              unit="percentunit", threshold=disk, width=8, height=4),
        panel("CPU usage", [prom(f"system_cpu_usage_ratio{{{_SI}}}", "{{instance}}")],
              unit="percentunit", threshold=cpu),
        panel("Memory usage", [prom(f"system_memory_usage_ratio{{{_SI}}}", "{{instance}}")],
              unit="percentunit", threshold=memory),
        panel("Disk usage", [prom(f"system_disk_usage_ratio{{{_SI}}}",
                                  "{{instance}} {{mountpoint}}")],
              unit="percentunit", threshold=disk),
        panel("Load per core (1 min)",
              [prom(f"system_load1{{{_SI}}} / on (instance) group_left system_cpu_cores"
                    f"{{{_SI}}}", "{{instance}}")],
              description="Above 1 means runnable work is waiting for a CPU."),
    ]
    return dashboard(*DASHBOARDS["host"], description, panels,
                     _variables("service", "instance"))


def _dependencies(t: Thresholds, description: str) -> dict[str, Any]:
    database = _limit(t, Signal.database_latency_seconds)
    redis = _limit(t, Signal.redis_latency_seconds)
    panels = [
        panel("Dependency up", [prom(f"dependency_up{{{_SI}}}", "{{name}} ({{kind}})")],
              kind="stat", width=24, height=4, description="1 = the last probe succeeded."),
        panel("Database round trip (SELECT 1)",
              [prom(f'dependency_latency_seconds{{{_SI}, kind=~"{_DATABASES}"}}',
                    "{{name}} ({{kind}})")], unit="s", threshold=database),
        panel("Redis round trip (PING)",
              [prom(f'dependency_latency_seconds{{{_SI}, kind="redis"}}', "{{name}}")],
              unit="s", threshold=redis),
        panel("Probe duration p95",
              [prom("histogram_quantile(0.95, sum by (name, kind, le) (rate("
                    f"dependency_probe_duration_seconds_bucket{{{_SI}}}[$__rate_interval])))",
                    "{{name}} ({{kind}})")], unit="s", width=24),
        row("Queues"),
        panel("Queue depth", [prom(f"queue_depth{{{_SI}}}", "{{backend}} {{queue}}")]),
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
                     _variables("service", "instance"))


def _slow_ms(t: Thresholds) -> str:
    """Where slow requests start, in milliseconds (access lines carry `duration_ms`)."""
    return f"{api_latency_seconds(t) * 1000:g}"


def _either(template: str, alloy: str, promtail: str) -> str:
    """`template` on Alloy's counter, or on Promtail's: one of the two shippers runs."""
    return f"{template.format(alloy)} or {template.format(promtail)}"


def _logs(t: Thresholds, description: str) -> dict[str, Any]:
    # The shippers send app_*.log and access_*.log only (kind="app"/"access"): error_*.log and
    # slow_requests_*.log are subsets of them, so errors and slow requests are found here.
    slow = _slow_ms(t)
    panels = [
        panel("Log lines by level",
              [loki(f"sum by (level) (count_over_time({{{_S}}} [$__interval]))", "{{level}}")],
              kind="timeseries", width=12),
        panel("Errors by service",
              [loki(f'sum by (service) (count_over_time({{{_S}, level=~"error|critical"}} '
                    "[$__interval]))", "{{service}}")], width=12),
        panel("Error lines", [loki(f'{{{_S}, level=~"error|critical"}}')], kind="logs",
              width=24, height=10),
        panel("Slow requests",
              [loki(f'{{{_S}, kind="access"}} | json | duration_ms >= {slow}')], kind="logs",
              width=24, height=10,
              description=f"Access lines of requests that took {slow} ms or more (the API "
              "latency threshold of thresholds.yaml)."),
        panel("Lines of one trace (set the trace id above)",
              [loki(f'{{{_S}}} |= "$trace_id"')], kind="logs", width=24, height=10),
        row("Shipping"),
        panel("Log shipper (Alloy or Promtail): entries per second",
              [prom(_either("sum(rate({}[$__rate_interval]))",
                            "loki_write_sent_entries_total", "promtail_sent_entries_total"),
                    "sent"),
               prom(_either("sum by (reason) (rate({}[$__rate_interval]))",
                            "loki_write_dropped_entries_total",
                            "promtail_dropped_entries_total"), "dropped: {{reason}}")],
              width=24, threshold=0.0,
              description="The compose stack's shipper (job log-shipper), which reads the "
              "daily files into Loki. Dropped entries were given up after all retries."),
        panel("Lines shipped to Loki per second",
              [prom(f"sum by (service) (rate(loki_shipper_lines_sent_total{{{_S}}}"
                    "[$__rate_interval]))", "{{service}}")],
              description="The exporter's own shipper: only where EXPORTER_LOKI_URL is set."),
        panel("Lines dropped per second",
              [prom(f"sum by (service, reason) (rate(loki_shipper_lines_dropped_total{{{_S}}}"
                    "[$__rate_interval]))", "{{service}} {{reason}}"),
               prom(f"sum by (service) (rate(log_file_lines_dropped_total{{{_S}}}"
                    "[$__rate_interval]))", "{{service}} files")], threshold=0.0,
              description="By the exporter's own shipper, and by the daily files."),
    ]
    return dashboard(*DASHBOARDS["logs"], description, panels,
                     _variables("service", "trace_id"))


def _alerts(t: Thresholds, n: RecordingNames, description: str) -> dict[str, Any]:
    links = (
        "Silences, notification groups and receivers live in Alertmanager: "
        "[Alert groups](/alerting/groups?alertmanager=Alertmanager), "
        "[Silences](/alerting/silences?alertmanager=Alertmanager). "
        "The sidecar lists the notifications it received at "
        "`/api/v1/observability/alerts`."
    )
    panels = [
        panel("Firing and pending alerts", [], kind="alertlist", width=12, height=10, options={
            "viewMode": "list", "groupMode": "default", "groupBy": [], "maxItems": 50,
            "sortOrder": 1, "dashboardAlerts": False, "alertName": "",
            "alertInstanceLabelFilter": "", "datasource": "Prometheus",
            "stateFilter": {"firing": True, "pending": True, "noData": False, "normal": False,
                            "error": True}}),
        panel("Alertmanager", [], kind="text", width=12, height=10,
              options={"mode": "markdown", "content": links}),
        panel("Firing alerts",
              [prom(f'sum by (alertname, severity) (ALERTS{{alertstate="firing", {_S}}})',
                    "{{alertname}} ({{severity}})")]),
        panel("Notifications sent by Alertmanager",
              [prom("sum by (integration) (rate(alertmanager_notifications_total"
                    "[$__rate_interval]))", "{{integration}}"),
               prom("sum by (integration) (rate(alertmanager_notifications_failed_total"
                    "[$__rate_interval]))", "{{integration}} failed")]),
        row("Errors"),
        panel("Exceptions by type",
              [prom(f"sum by (service, exception_type) (increase(exceptions_total{{{_SI}}}"
                    "[$__rate_interval]))", "{{service}} {{exception_type}}")]),
        panel("5xx responses per second",
              [prom(f"{n.errors('service')}{{{_S}}}", "{{service}}")], unit="reqps",
              threshold=None),
    ]
    return dashboard(*DASHBOARDS["alerts"], description, panels,
                     _variables("service", "instance"))


def dashboards(thresholds: Thresholds) -> dict[str, dict[str, Any]]:
    """File stem -> dashboard JSON document."""
    names = RecordingNames(thresholds.render.rate_window)
    return {
        "service-overview": _service(thresholds, names, HEADER),
        "host": _host(thresholds, HEADER),
        "dependencies-queues": _dependencies(thresholds, HEADER),
        "logs": _logs(thresholds, HEADER),
        "alerts-errors": _alerts(thresholds, names, HEADER),
        "celery": celery_dashboard(thresholds, HEADER),
    }
