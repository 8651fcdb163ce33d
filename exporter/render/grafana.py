"""Building blocks of Grafana dashboard JSON: datasources, queries, panels, variables, layout."""

from __future__ import annotations

from typing import Any

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}
SCHEMA_VERSION = 39
_WIDTH = 24


def prom(expr: str, legend: str = "", exemplar: bool = False) -> dict[str, Any]:
    """A Prometheus query (refIds are set by the panel)."""
    return {"datasource": PROMETHEUS, "expr": expr, "legendFormat": legend or "__auto",
            "exemplar": exemplar, "range": True}


def loki(expr: str, legend: str = "") -> dict[str, Any]:
    """A Loki query (LogQL)."""
    target: dict[str, Any] = {"datasource": LOKI, "expr": expr, "queryType": "range"}
    if legend:
        target["legendFormat"] = legend
    return target


def steps(above: float | None) -> dict[str, Any]:
    """Threshold steps: green, then red from the alert threshold of thresholds.yaml."""
    base: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if above is not None:
        base.append({"color": "red", "value": above})
    return {"mode": "absolute", "steps": base}


def panel(
    title: str,
    targets: list[dict[str, Any]],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    threshold: float | None = None,
    width: int = 12,
    height: int = 8,
    description: str = "",
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A panel without id or position (`layout` assigns both)."""
    datasource = targets[0]["datasource"] if targets else PROMETHEUS
    custom: dict[str, Any] = {}
    if kind == "timeseries":
        custom = {"drawStyle": "line", "fillOpacity": 10, "lineWidth": 1, "showPoints": "never",
                  "thresholdsStyle": {"mode": "line" if threshold is not None else "off"}}
    result: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": steps(threshold), "custom": custom},
            "overrides": [],
        },
        "options": options if options is not None else _default_options(kind),
        "gridPos": {"w": width, "h": height},
    }
    return result


def _default_options(kind: str) -> dict[str, Any]:
    if kind == "timeseries":
        return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"}}
    if kind == "logs":
        return {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending",
                "enableLogDetails": True, "dedupStrategy": "none"}
    if kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "background", "graphMode": "area", "textMode": "auto"}
    return {}


def row(title: str) -> dict[str, Any]:
    """A row header (not collapsible, so every panel shows at once)."""
    return {"type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"w": _WIDTH, "h": 1}}


def layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ids 1..n in order and left-to-right, top-to-bottom positions: stable across renders."""
    x = y = line_height = 0
    placed = []
    for number, item in enumerate(panels, start=1):
        w, h = item["gridPos"]["w"], item["gridPos"]["h"]
        if x + w > _WIDTH or item["type"] == "row":
            x, y, line_height = 0, y + line_height, 0
        placed.append({**item, "id": number, "gridPos": {"x": x, "y": y, "w": w, "h": h}})
        x, line_height = x + w, max(line_height, h)
        if item["type"] == "row":
            x, y, line_height = 0, y + h, 0
    return placed


def query_variable(name: str, query: str, label: str) -> dict[str, Any]:
    """A multi-value Prometheus label variable with "All" (as the regex `.+`).

    `.+`, not `.*`: Grafana puts the all-value into the query as it is, and Loki refuses a
    stream selector whose only matcher matches the empty string (`{service=~".*"}`)."""
    return {
        "name": name, "label": label, "type": "query", "datasource": PROMETHEUS,
        "query": {"query": query, "refId": f"{name}-variable"}, "definition": query,
        "refresh": 2, "multi": True, "includeAll": True, "allValue": ".+", "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "hide": 0,
    }


def text_variable(name: str, label: str) -> dict[str, Any]:
    """A free-text variable (a trace id to search for)."""
    return {"name": name, "label": label, "type": "textbox", "query": "", "hide": 0,
            "current": {"text": "", "value": ""}}


def dashboard(
    uid: str, title: str, description: str, panels: list[dict[str, Any]],
    variables: list[dict[str, Any]],
) -> dict[str, Any]:
    """A complete dashboard document, as Grafana's file provisioning reads it."""
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["exporter", "generated"], "timezone": "browser", "editable": False,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"}, "graphTooltip": 1,
        "annotations": {"list": []}, "links": [],
        "templating": {"list": variables},
        "panels": layout(panels),
    }
