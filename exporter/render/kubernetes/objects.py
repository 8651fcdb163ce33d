"""What every object of deploy/kubernetes/ shares: its metadata and labels."""

from __future__ import annotations

from typing import Any

from exporter.kubernetes_options import KubernetesOptions

MONITORING = "monitoring.coreos.com/v1"
MONITORING_ALPHA = "monitoring.coreos.com/v1alpha1"
PART_OF = {"app.kubernetes.io/part-of": "exporter"}
APP_LABEL = "app.kubernetes.io/name"
SIDECAR_PORT = 9480
SIDECAR_PORT_NAME = "http"


def labels(options: KubernetesOptions, *, release: bool = False,
           extra: dict[str, str] | None = None) -> dict[str, str]:
    """The kit's labels; with `release`, the label kube-prometheus-stack selects by."""
    found = {**PART_OF, **(extra or {})}
    if release and options.release:
        found["release"] = options.release
    return found


def obj(api: str, kind: str, name: str, options: KubernetesOptions, spec_key: str,
        spec: Any, *, release: bool = False, extra: dict[str, str] | None = None) -> (
        dict[str, Any]):
    """One object in the kit's namespace: apiVersion, kind, metadata, then its `spec_key`."""
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": options.namespace,
                     "labels": labels(options, release=release, extra=extra)},
        spec_key: spec,
    }


def sidecar_labels(options: KubernetesOptions) -> dict[str, str]:
    """The labels that pick the sidecar's pods (Deployment, Service, NetworkPolicy)."""
    return {APP_LABEL: "exporter", "app.kubernetes.io/instance": options.sidecar}


def sidecar_url(options: KubernetesOptions) -> str:
    """The sidecar's address inside the cluster."""
    return f"http://{options.sidecar}.{options.namespace}.svc:{SIDECAR_PORT}"
