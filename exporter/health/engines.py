"""Prometheus (or Thanos, Mimir, VictoriaMetrics) and Alertmanager over their HTTP APIs.

One client per engine, with its authentication and tenant, a timeout on every call, and the
state of its last call: a health check names an engine that is down or slow, with the reason,
and the sidecar answers from the values it has meanwhile (marked stale), never with a 500.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from exporter.signals import Labels


class EngineError(RuntimeError):
    """An engine did not answer as it should; the message says which and why."""


@dataclass(frozen=True)
class EngineState:
    """An engine's last call: whether it answered, why not, and when."""

    name: str
    url: str
    up: bool | None  # None before the first call
    reason: str
    checked_at: float | None


def _reason(exc: Exception, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else (
            f"cannot connect: {' '.join(str(exc).split())[:120]}")
    return " ".join(str(exc).split())[:200] or type(exc).__name__


class EngineClient:
    """GETs JSON from one engine, remembering how its last call went."""

    def __init__(
        self, name: str, url: str, *, timeout: float, username: str = "", password: str = "",
        bearer: str = "", tenant: str = "",
    ) -> None:
        self.name, self.url, self.timeout = name, url.rstrip("/"), timeout
        headers = {"Accept": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        if tenant:
            headers["X-Scope-OrgID"] = tenant
        auth = httpx.BasicAuth(username, password) if username else None
        self._client = httpx.Client(timeout=timeout, headers=headers, auth=auth)
        self._lock = threading.Lock()
        self._state = EngineState(name, self.url, None, "not asked yet", None)

    @property
    def state(self) -> EngineState:
        """How the last call went."""
        with self._lock:
            return self._state

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The JSON answer of `path`; `EngineError` (and a down state) on any failure."""
        try:
            reply = self._client.get(self.url + path, params=params)
            if reply.status_code != 200:
                detail = reply.text.strip().replace("\n", " ")[:200]
                raise EngineError(f"HTTP {reply.status_code} from {path}: {detail}")
            body = reply.json()
        except (httpx.HTTPError, ValueError, EngineError) as exc:
            self._note(False, _reason(exc, self.timeout))
            raise EngineError(f"{self.name}: {_reason(exc, self.timeout)}") from None
        self._note(True, "ok")
        return body

    def _note(self, up: bool, reason: str) -> None:
        with self._lock:
            self._state = EngineState(self.name, self.url, up, reason, time.time())

    def close(self) -> None:
        """Close the connections."""
        self._client.close()


def _labels(metric: dict[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in metric.items() if v and k != "__name__"))


class PrometheusQueries:
    """Instant and range queries over Prometheus' HTTP API."""

    def __init__(self, client: EngineClient) -> None:
        self.client = client

    def instant(self, expr: str, at: float | None = None) -> dict[Labels, float]:
        """The vector `expr` gives (at `at`, or now): labels -> value, NaN left out."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = self.client.get("/api/v1/query", params)
        data = body.get("data", {})
        if body.get("status") != "success" or data.get("resultType") != "vector":
            raise EngineError(f"prometheus: not a vector for {expr[:80]!r}: {body.get('error')}")
        out = {}
        for item in data["result"]:
            value = float(item["value"][1])
            if not math.isnan(value):
                out[_labels(item["metric"])] = value
        return out

    def range(self, expr: str, start: float, end: float, step: float) -> (
            dict[float, dict[Labels, float]]):
        """The matrix `expr` gives from `start` to `end`: time -> labels -> value."""
        body = self.client.get("/api/v1/query_range", {
            "query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
        if body.get("status") != "success":
            raise EngineError(f"prometheus: {body.get('error')}")
        out: dict[float, dict[Labels, float]] = {}
        for item in body["data"]["result"]:
            labels = _labels(item["metric"])
            for at, text in item["values"]:
                value = float(text)
                if not math.isnan(value):
                    out.setdefault(float(at), {})[labels] = value
        return out
