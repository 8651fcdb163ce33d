"""The Prometheus Operator's objects: the rules as one PrometheusRule, and a ServiceMonitor and
a PodMonitor for the instrumented app (kustomization.yaml applies one of the two).

Both monitors scrape each pod once, on its named port: with several uvicorn workers a pod
serves the sum of its workers in one /metrics (multiprocess mode, docs/multiprocess.md), so one
series set per pod. Both label every target `service=<app>`, as the compose
stack's scrape config does: rules, dashboards and the sidecar's selector read that label.
"""

from __future__ import annotations

from typing import Any

from exporter.kubernetes_options import KubernetesOptions
from exporter.render.alerting import rule_groups
from exporter.render.kubernetes.objects import APP_LABEL, MONITORING, obj
from exporter.thresholds import Thresholds

RULES_NAME = "exporter-rules"


def prometheus_rule(thresholds: Thresholds) -> dict[str, Any]:
    """Every rule group of prometheus/rules/, recording then alerting, in one object."""
    options = thresholds.render.kubernetes
    return obj(MONITORING, "PrometheusRule", RULES_NAME, options, "spec",
               {"groups": rule_groups(thresholds)}, release=True)


def _endpoint(options: KubernetesOptions) -> dict[str, Any]:
    return {
        "port": options.app_port,
        "path": options.metrics_path,
        "scheme": "http",
        "interval": options.scrape_interval,
        # Runs after the operator's own relabelings (namespace, pod, service, job...):
        # `service` is the app's name whichever monitor found the pod, whatever the Service
        # is called.
        "relabelings": [{"action": "replace", "targetLabel": "service",
                         "replacement": options.app}],
    }


def _selection(options: KubernetesOptions) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchNames": [options.app_namespace]},
        "selector": {"matchLabels": {APP_LABEL: options.app}},
    }


def service_monitor(options: KubernetesOptions) -> dict[str, Any]:
    """Scrapes the pods behind the app's Service (labelled app.kubernetes.io/name=<app>)."""
    return obj(MONITORING, "ServiceMonitor", options.app, options, "spec",
               {**_selection(options), "endpoints": [_endpoint(options)]}, release=True)


def pod_monitor(options: KubernetesOptions) -> dict[str, Any]:
    """Scrapes the app's pods directly, for an app without a Service."""
    return obj(MONITORING, "PodMonitor", options.app, options, "spec",
               {**_selection(options), "podMetricsEndpoints": [_endpoint(options)]},
               release=True)
