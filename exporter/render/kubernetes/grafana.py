"""Grafana's objects: one ConfigMap per dashboard for the dashboard sidecar
(`grafana_dashboard: "1"`, kube-prometheus-stack's label), and one with the datasources the
dashboards need besides the stack's own Prometheus (`grafana_datasource: "1"`).

The dashboards query the datasource uids `prometheus` (kube-prometheus-stack provisions its
Prometheus with that uid, as the default) and `loki`. Ours are never the default: Grafana
refuses two.
"""

from __future__ import annotations

from typing import Any

from exporter.kubernetes_options import KubernetesOptions
from exporter.render.filetext import dump, json_text
from exporter.render.kubernetes.objects import obj

DATASOURCES_NAME = "exporter-datasources"
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
DATASOURCE_LABEL = {"grafana_datasource": "1"}
# As grafana/provisioning/datasources/datasources.yml: the trace id in a JSON log line becomes
# a link to every line of that trace (`$$`: Grafana expands variables in provisioning files).
# The compose file's links to its Tempo are left out: no Tempo is provisioned here.
LOKI_JSON_DATA = {
    "maxLines": 1000,
    "derivedFields": [{
        "name": "trace_id",
        "matcherRegex": '"trace_id":\\s*"(\\w+)"',
        "datasourceUid": "loki",
        "url": '{service=~".+"} |= "$${__value.raw}"',
        "urlDisplayLabel": "Logs of this trace",
    }],
}


def dashboard_config_maps(options: KubernetesOptions, boards: dict[str, dict[str, Any]]) -> (
        dict[str, dict[str, Any]]):
    """name -> the ConfigMap of grafana/dashboards/<name>.json (same text)."""
    return {
        name: obj("v1", "ConfigMap", f"exporter-dashboard-{name}", options, "data",
                  {f"{name}.json": json_text(board)}, extra=DASHBOARD_LABEL)
        for name, board in boards.items()
    }


def _datasources(options: KubernetesOptions) -> list[dict[str, Any]]:
    found = []
    if options.prometheus_datasource:
        found.append({"name": "Prometheus (exporter)", "uid": "prometheus", "type": "prometheus",
                      "access": "proxy", "url": options.prometheus_url, "isDefault": False,
                      "editable": False, "jsonData": {"httpMethod": "POST"}})
    if options.loki_url:
        found.append({"name": "Loki", "uid": "loki", "type": "loki", "access": "proxy",
                      "url": options.loki_url, "isDefault": False, "editable": False,
                      "jsonData": LOKI_JSON_DATA})
    return found


def datasources_config_map(options: KubernetesOptions) -> dict[str, Any]:
    """The provisioning file of the dashboards' other datasources, in Grafana's namespace."""
    document = {"apiVersion": 1, "datasources": _datasources(options)}
    return obj("v1", "ConfigMap", DATASOURCES_NAME, options, "data",
               {f"{DATASOURCES_NAME}.yaml": dump(document)}, extra=DATASOURCE_LABEL)

