"""`exporter render --target kubernetes`: deploy/kubernetes/, the same rules, dashboards and
alert routing as the compose stack, as objects for the Prometheus Operator
(kube-prometheus-stack), Grafana's sidecars and the sidecar in over-Prometheus mode; tied by a
kustomization.yaml (`kubectl apply -k deploy/kubernetes`). docs/kubernetes.md says how.
"""

from __future__ import annotations

from typing import Any

from exporter.kubernetes_options import KubernetesOptions
from exporter.render.dashboards import dashboards
from exporter.render.filetext import yaml_file
from exporter.render.header import HEADER
from exporter.render.kubernetes.alertmanager import alertmanager_config, templates_config_map
from exporter.render.kubernetes.grafana import dashboard_config_maps, datasources_config_map
from exporter.render.kubernetes.monitoring import pod_monitor, prometheus_rule, service_monitor
from exporter.render.kubernetes.sidecar import deployment, network_policy, service
from exporter.thresholds import Thresholds

DIRECTORY = "deploy/kubernetes"
COMMAND = "exporter render --target kubernetes"
MONITORS = {"service": "servicemonitor.yaml", "pod": "podmonitor.yaml"}
NETWORK_POLICY = "sidecar-networkpolicy.yaml"


def objects(thresholds: Thresholds, templates: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every object by its file name under deploy/kubernetes/, one object per file."""
    options = thresholds.render.kubernetes
    found = {
        "prometheusrule.yaml": prometheus_rule(thresholds),
        MONITORS["service"]: service_monitor(options),
        MONITORS["pod"]: pod_monitor(options),
        "alertmanagerconfig.yaml": alertmanager_config(options),
        "alertmanager-templates.yaml": templates_config_map(options, templates),
        "grafana-datasources.yaml": datasources_config_map(options),
    }
    for name, config_map in dashboard_config_maps(options, dashboards(thresholds)).items():
        found[f"grafana-dashboard-{name}.yaml"] = config_map
    found["sidecar-deployment.yaml"] = deployment(options)
    found["sidecar-service.yaml"] = service(options)
    found[NETWORK_POLICY] = network_policy(options)
    return found


def applied(options: KubernetesOptions, names: list[str]) -> list[str]:
    """The files kustomization.yaml lists: one monitor, the NetworkPolicy when wanted."""
    left_out = {monitor for kind, monitor in MONITORS.items() if kind != options.monitor}
    if not options.network_policy:
        left_out.add(NETWORK_POLICY)
    return [name for name in names if name not in left_out]


def _kustomization(options: KubernetesOptions, names: list[str]) -> str:
    resources = "".join(f"  - {name}\n" for name in applied(options, names))
    skipped = sorted(set(names) - set(applied(options, names)))
    note = "".join(f"#   {name}\n" for name in skipped)
    return (
        f"# {HEADER}\n# Regenerate: {COMMAND}  (reads thresholds.yaml)\n"
        "# kubectl apply -k deploy/kubernetes   (create the Secret first: docs/kubernetes.md)\n"
        + ("# Written but not applied (render.kubernetes.monitor, .network_policy):\n" + note
           if note else "")
        + "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        + f"resources:\n{resources}"
    )


def kubernetes_files(thresholds: Thresholds, templates: dict[str, str]) -> dict[str, str]:
    """Every file of deploy/kubernetes/: relative path -> text. `templates`: the files of
    alertmanager/templates/ by name (the receivers' texts)."""
    found = objects(thresholds, templates)
    files = {f"{DIRECTORY}/{name}": yaml_file(o, command=COMMAND) for name, o in found.items()}
    files[f"{DIRECTORY}/kustomization.yaml"] = _kustomization(
        thresholds.render.kubernetes, list(found))
    return files
