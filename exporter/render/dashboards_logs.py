"""The dashboards that show logs and alerts rather than signals: Logs, Alerts and errors."""

from __future__ import annotations

from typing import Any

from exporter.render.grafana import dashboard, loki, panel, prom, row
from exporter.render.links import DASHBOARDS
from exporter.render.variables import variables
from exporter.signals import CATALOGUE, Level, Ratio
from exporter.thresholds import Thresholds, api_latency_seconds

_S = 'service=~"$service"'
_SI = 'service=~"$service", instance=~"$instance"'
SERVICE_LEVEL = Level("service", ("service",))


def _named(name: str, expr: str) -> str:
    return name


def _slow_ms(t: Thresholds) -> str:
    """Where slow requests start, in milliseconds (access lines carry `duration_ms`)."""
    return f"{api_latency_seconds(t) * 1000:g}"


def _either(template: str, alloy: str, promtail: str) -> str:
    """`template` on Alloy's counter, or on Promtail's: one of the two shippers runs."""
    return f"{template.format(alloy)} or {template.format(promtail)}"


def logs_dashboard(t: Thresholds, description: str) -> dict[str, Any]:
    """Log lines by level, errors, slow requests, one trace, and log shipping."""
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
                     variables("service", "trace_id"))


def alerts_dashboard(t: Thresholds, description: str) -> dict[str, Any]:
    """Firing alerts, Alertmanager's notifications, exceptions and 5xx responses."""
    errors = CATALOGUE.get("http_error_ratio").query
    assert isinstance(errors, Ratio)
    five_xx = errors.numerator.rule_expr(SERVICE_LEVEL, t.render.rate_window, _named)
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
              [prom(f"{five_xx}{{{_S}}}", "{{service}}")], unit="reqps",
              threshold=None),
    ]
    return dashboard(*DASHBOARDS["alerts"], description, panels,
                     variables("service", "instance"))
