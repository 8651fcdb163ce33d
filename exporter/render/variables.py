"""The dashboards' template variables: service, instance, route, task and a free trace id."""

from __future__ import annotations

from typing import Any

from exporter.render.grafana import query_variable, text_variable

_S = 'service=~"$service"'


def variables(*names: str, window: str = "5m") -> list[dict[str, Any]]:
    """The variables called `names`, in that order (`window`: the recording rules')."""
    known = {
        "service": query_variable("service", "label_values(up, service)", "service"),
        "instance": query_variable(
            "instance", f"label_values(up{{{_S}}}, instance)", "instance"),
        "route": query_variable(
            # The per-route recording rule: it names the route `route` under either naming.
            "route", f"label_values(service_route:http_requests:rate{window}{{{_S}}}, route)",
            "route"),
        "task": query_variable("task", f"label_values(celery_tasks_total{{{_S}}}, task)", "task"),
        "trace_id": text_variable("trace_id", "trace id"),
    }
    return [known[name] for name in names]
