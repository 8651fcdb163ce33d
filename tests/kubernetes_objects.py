"""Reading and validating deploy/kubernetes/ in tests: each object against its kind's schema.

The Prometheus Operator's kinds go through cloudcoil's pydantic models of its v0.80.1 CRDs,
strict (no coercion: `sendResolved: "yes"` is refused) with unknown fields refused (a typo
such as `portt` fails, where the CRDs' own OpenAPI and the npm models pass it). Core kinds go
through kubernetes-validate's strict JSON schemas of Kubernetes 1.32 (the kubectl here).
A kind without a validator fails: nothing passes unchecked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from cloudcoil.models.prometheus_operator import v1, v1alpha1
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.32"
CRD_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): v1.PrometheusRule,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): v1.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PodMonitor"): v1.PodMonitor,
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"): v1alpha1.AlertmanagerConfig,
}
CORE_KINDS = {("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Service"),
              ("networking.k8s.io/v1", "NetworkPolicy")}


class K8sLoader(yaml.SafeLoader):
    """kustomize writes `matchType: =` bare, which YAML 1.1 reads as the `value` tag."""


K8sLoader.add_constructor("tag:yaml.org,2002:value", K8sLoader.construct_yaml_str)


def load_all(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML text (empty documents skipped)."""
    return [doc for doc in yaml.load_all(text, Loader=K8sLoader) if doc]


def committed_objects(directory: Path = DEPLOY) -> dict[str, dict[str, Any]]:
    """file name -> object, for every file but kustomization.yaml."""
    found = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            (found[path.name],) = load_all(path.read_text())
    return found


def strict(model: type[BaseModel], data: Any) -> BaseModel:
    """Validate as the API server would, and stricter: no coercion, no unknown field."""
    return model.model_validate(data, strict=True, extra="forbid", by_alias=True, by_name=False)


def _check_routes(route: dict[str, Any], receivers: set[str], top: bool = True) -> None:
    """What the operator's admission webhook checks, and the CRD cannot: the root route has a
    receiver, every receiver named exists; child routes are free-form in the CRD, so each is
    validated as a Route itself."""
    if top:
        assert route.get("receiver"), "root route must define a receiver"
    if route.get("receiver"):
        assert route["receiver"] in receivers, f"receiver {route['receiver']!r} not found"
    for child in route.get("routes") or []:
        strict(v1alpha1.Route, child)
        _check_routes(child, receivers, top=False)


def validate(obj: dict[str, Any]) -> str:
    """Validate one object against its kind's schema; returns `apiVersion/kind`."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CRD_MODELS:
        strict(CRD_MODELS[key], obj)
        if obj["kind"] == "AlertmanagerConfig":
            receivers = {r["name"] for r in obj["spec"]["receivers"]}
            _check_routes(obj["spec"]["route"], receivers)
    elif key in CORE_KINDS:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    else:
        raise AssertionError(f"no validator for {key}")
    return "/".join(key)


def rule_files(rule: dict[str, Any], directory: Path) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file in `directory`."""
    path = directory / "prometheusrule-groups.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path
