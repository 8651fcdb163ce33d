"""The generated dashboards' uids and titles, and the links alerts carry to them and to runbooks."""

from __future__ import annotations

import re

from exporter.thresholds import RenderOptions

# key -> (uid, title). Uids are stable: alert links and bookmarks point at them.
DASHBOARDS: dict[str, tuple[str, str]] = {
    "service": ("exporter-service", "Service overview"),
    "host": ("exporter-host", "Host"),
    "dependencies": ("exporter-dependencies", "Dependencies and queues"),
    "logs": ("exporter-logs", "Logs"),
    "alerts": ("exporter-alerts", "Alerts and errors"),
    "celery": ("exporter-celery", "Celery"),
}


def anchor(heading: str) -> str:
    """The anchor GitHub and most Markdown renderers give a heading (`HighCpuUsage` -> ...)."""
    return re.sub(r"[^a-z0-9_-]", "", heading.lower().replace(" ", "-"))


def runbook_url(options: RenderOptions, alert: str) -> str:
    """Where the runbook section of `alert` lives."""
    return f"{options.runbook_url}#{anchor(alert)}"


def dashboard_url(options: RenderOptions, dashboard: str) -> str:
    """A Go-template link to `dashboard`, filtered to the alert's service."""
    uid, _ = DASHBOARDS[dashboard]
    return f"{options.grafana_url}/d/{uid}?var-service={{{{ $labels.service }}}}"
