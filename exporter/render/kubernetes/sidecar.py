"""The sidecar in over-Prometheus mode: a Deployment reading the app's signals from
Prometheus (or Thanos, Mimir) and its alerts from Alertmanager, its Service (the status page,
the API, Alertmanager's webhook), and a NetworkPolicy that lets only the namespace's pods in.

Secrets are read from the Secret `render.kubernetes.secret` (`secretKeyRef`), never written
here: api-token (required), prometheus-password, prometheus-bearer-token, loki-password and
loki-bearer-token (each optional).
"""

from __future__ import annotations

from typing import Any

from exporter.kubernetes_options import KubernetesOptions
from exporter.render.kubernetes.alertmanager import API_TOKEN_KEY
from exporter.render.kubernetes.objects import (
    SIDECAR_PORT,
    SIDECAR_PORT_NAME,
    obj,
    sidecar_labels,
)

UID = 10480  # the image's `exporter` user (Dockerfile)
STATE = "/var/lib/exporter"  # EXPORTER_LOG_DIR and EXPORTER_DATA_DIR live below it
# (variable, Secret key, required)
SECRETS = (
    ("EXPORTER_API_TOKEN", API_TOKEN_KEY, True),
    ("EXPORTER_PROMETHEUS_PASSWORD", "prometheus-password", False),
    ("EXPORTER_PROMETHEUS_BEARER_TOKEN", "prometheus-bearer-token", False),
    ("EXPORTER_LOKI_PASSWORD", "loki-password", False),
    ("EXPORTER_LOKI_BEARER_TOKEN", "loki-bearer-token", False),
)


def _env(options: KubernetesOptions) -> list[dict[str, Any]]:
    plain = {
        "EXPORTER_SERVICE_NAME": options.app,
        "EXPORTER_PORT": str(SIDECAR_PORT),
        "EXPORTER_PROMETHEUS_URL": options.prometheus_url,
        "EXPORTER_SERVICE_SELECTOR": options.service_selector,
        "EXPORTER_PROMETHEUS_USERNAME": options.prometheus_username,
        "EXPORTER_PROMETHEUS_TENANT": options.prometheus_tenant,
        "EXPORTER_ALERTMANAGER_URL": options.alertmanager_url,
        "EXPORTER_LOKI_URL": options.loki_url,
    }
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain.items() if v]
    for name, key, required in SECRETS:
        ref = {"name": options.secret, "key": key, **({} if required else {"optional": True})}
        env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    return env


def _probe(delay: int, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": "/healthz", "port": SIDECAR_PORT_NAME},
            "initialDelaySeconds": delay, "periodSeconds": period, "timeoutSeconds": 5,
            "failureThreshold": 3}


def _container(options: KubernetesOptions) -> dict[str, Any]:
    return {
        "name": "exporter",
        "image": options.sidecar_image,
        "args": ["serve"],
        "ports": [{"name": SIDECAR_PORT_NAME, "containerPort": SIDECAR_PORT,
                   "protocol": "TCP"}],
        "env": _env(options),
        "readinessProbe": _probe(5, 10),
        "livenessProbe": _probe(20, 15),
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                      "limits": {"memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "state", "mountPath": STATE},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }


def deployment(options: KubernetesOptions) -> dict[str, Any]:
    """One replica: the sidecar keeps its history and notifications in memory."""
    selected = sidecar_labels(options)
    pod = {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(options)],
        "volumes": [{"name": "state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    spec = {"replicas": 1, "selector": {"matchLabels": selected},
            "template": {"metadata": {"labels": selected}, "spec": pod}}
    return obj("apps/v1", "Deployment", options.sidecar, options, "spec", spec, extra=selected)


def service(options: KubernetesOptions) -> dict[str, Any]:
    """The sidecar's address: sidecar_url() (Alertmanager's webhook, Grafana, people)."""
    spec = {"type": "ClusterIP", "selector": sidecar_labels(options),
            "ports": [{"name": SIDECAR_PORT_NAME, "port": SIDECAR_PORT,
                       "targetPort": SIDECAR_PORT_NAME, "protocol": "TCP"}]}
    return obj("v1", "Service", options.sidecar, options, "spec", spec,
               extra=sidecar_labels(options))


def network_policy(options: KubernetesOptions) -> dict[str, Any]:
    """Ingress to the sidecar's port from pods of its own namespace only (Alertmanager,
    Grafana, Prometheus in kube-prometheus-stack's namespace); egress is left open (it reads
    Prometheus, Alertmanager and Loki wherever they are)."""
    spec = {"podSelector": {"matchLabels": sidecar_labels(options)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}],
                         "ports": [{"port": SIDECAR_PORT_NAME, "protocol": "TCP"}]}]}
    return obj("networking.k8s.io/v1", "NetworkPolicy", options.sidecar, options, "spec", spec,
               extra=sidecar_labels(options))
