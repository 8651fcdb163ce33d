"""The apps `http_overhead.py` and `http_instructions.py` serve (factories in `apps.py`), what
each must show to be the variant it claims, and what it needs around it (a Loki receiver, a
data directory)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402

ROUTE = "/items/{item_id}"
SPANS_PATH = "/bench/spans"  # apps.SPANS_PATH (apps.py is imported by the servers only)


class BenchError(Exception):
    """The bench cannot produce trustworthy figures; the message says why."""


@dataclass(frozen=True)
class Variant:
    """One app served: its factory and what it must show."""

    name: str
    factory: str
    text: str
    counts: str | None = None  # whose request counter /metrics holds: ours, instrumentator, otel
    trace_header: bool = False  # answers carry our X-Trace-Id
    spans: bool = False  # FastAPI's spans reach the discarding exporter (SPANS_PATH)
    sampled: bool = False  # ...for about one request in ten only
    logs: bool = False  # access lines reach the daily files and the Loki receiver


VARIANTS = {v.name: v for v in (
    Variant("bare", "apps:bare_app", "FastAPI, no instrumentation"),
    Variant("bare-again", "apps:bare_app", "the same bare app again (the A/A pair)"),
    Variant("ours", "apps:ours_app", "`instrument(app)`", "ours", trace_header=True),
    Variant("in-app", "apps:in_app_app",
            "`instrument(app, observability=True)`: the page, API, history and health inside "
            "the app", "ours", trace_header=True),
    Variant("everything", "apps:everything_app",
            "`instrument` + `setup_logging` (daily files, Loki) + `enable_access_log` + "
            "`enable_error_capture`", "ours", trace_header=True, logs=True),
    Variant("instrumentator", "apps:instrumentator_app",
            "prometheus-fastapi-instrumentator", "instrumentator"),
    Variant("otel", "apps:otel_app",
            "FastAPI's own OpenTelemetry, SDK: spans batched + metrics to Prometheus", "otel",
            spans=True),
    Variant("otel-spans", "apps:otel_spans_app", "FastAPI's own OpenTelemetry, spans only",
            spans=True),
    Variant("otel-metrics", "apps:otel_metrics_app",
            "FastAPI's own OpenTelemetry, metrics only (PrometheusMetricReader)", "otel"),
    Variant("otel-spans-lean", "apps:otel_spans_lean_app",
            "FastAPI's own spans with `telemetry={\"operation_spans\": False}` (the server span "
            "only)", spans=True),
    Variant("otel-spans-sampled", "apps:otel_spans_sampled_app",
            "FastAPI's own spans, 1 trace in 10 sampled (TraceIdRatioBased 0.1)", spans=True,
            sampled=True),
    Variant("ours-otel-spans", "apps:ours_otel_spans_app",
            "`instrument(app)` + FastAPI's own spans", "ours", trace_header=True, spans=True),
)}
GROUPS = {
    "default": ("bare", "ours", "everything", "instrumentator"),
    "otel": ("bare", "ours", "otel", "otel-spans", "otel-metrics", "ours-otel-spans"),
    "otel-options": ("bare", "otel-spans", "otel-spans-lean", "otel-spans-sampled"),
    "in-app": ("bare", "ours", "in-app"),
    "all": ("bare", "ours", "in-app", "everything", "instrumentator", "otel", "otel-spans",
            "otel-metrics", "otel-spans-lean", "otel-spans-sampled", "ours-otel-spans"),
}

# goal: (variant, compared with, lowest ratio of their req/s); printed when both were served
GOALS = {
    "ours >= 0.95 of bare": ("ours", "bare", 0.95),
    "everything >= 0.85 of bare": ("everything", "bare", 0.85),
    "ours above the instrumentator": ("ours", "instrumentator", 1.0 + 1e-9),
    "ours plus FastAPI's spans >= 0.93 of its spans alone": ("ours-otel-spans", "otel-spans", 0.93),
    "ours >= 1.25x FastAPI's own metrics": ("ours", "otel-metrics", 1.25),
    "the in-app page and API cost the app at most 1 %": ("in-app", "ours", 0.99),
}


def parse_variants(text: str) -> tuple[str, ...]:
    """A group name or comma-separated variant names; bare always comes first."""
    names = GROUPS.get(text) or tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}: choose from "
                         f"{', '.join(VARIANTS)} or a group ({', '.join(GROUPS)})")
    return ("bare", *(n for n in dict.fromkeys(names) if n != "bare"))


@contextlib.contextmanager
def surroundings(variant: Variant, pin: Sequence[str] = ()) -> Iterator[dict[str, str]]:
    """The environment the variant's server needs: for `logs`, a data directory and a Loki
    receiver (tests/loki_receiver.py, strict about the push format; run under `pin`, e.g.
    taskset on the client's core), stopped afterwards."""
    if not variant.logs:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        port = free_port()
        receiver = subprocess.Popen(
            [*pin, sys.executable, str(ROOT / "tests" / "loki_receiver.py"), str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            loki = f"http://127.0.0.1:{port}"
            _wait_for(lambda: httpx.get(f"{loki}/count", timeout=1).status_code == 200,
                      20, "the Loki receiver did not start")
            yield {"BENCH_DATA_DIR": tmp, "BENCH_LOKI_URL": loki}
        finally:
            receiver.terminate()
            receiver.wait()


def _wait_for(condition: object, seconds: float, failure: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if condition():  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise BenchError(failure)


def route_count(variant: Variant, base: str) -> float:
    """Requests to `/items/{item_id}` the variant's own metrics have counted so far."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    family_name, sample_name, label = {
        "ours": ("http_requests", "http_requests_total", "route"),
        "instrumentator": ("http_requests", "http_requests_total", "handler"),
        "otel": ("http_server_request_duration_seconds",
                 "http_server_request_duration_seconds_count", "http_route"),
    }[variant.counts or "ours"]
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            total += sum(s.value for s in family.samples
                         if s.name == sample_name and s.labels.get(label) == ROUTE)
    return total


def spans_exported(base: str) -> int:
    return int(httpx.get(base + SPANS_PATH, timeout=10).json()["exported"])


def check(variant: Variant, base: str, env: dict[str, str]) -> None:
    """Fail unless the server behaves as `variant` claims: the bench app, with exactly the
    instrumentation it names (metrics, header, spans, access lines in the files and in Loki)."""
    spans_before = spans_exported(base) if variant.spans else 0
    item = httpx.get(f"{base}/items/7", timeout=5)
    if item.status_code != 200 or item.json().get("item_id") != 7:
        raise BenchError(f"{variant.name}: GET /items/7 answered {item.status_code} {item.text!r}")
    if ("x-trace-id" in item.headers) != variant.trace_header:
        raise BenchError(f"{variant.name}: X-Trace-Id present={not variant.trace_header}")
    metrics = httpx.get(f"{base}/metrics", timeout=5)
    if variant.counts is None:
        if metrics.status_code != 404:
            raise BenchError(f"{variant.name}: the app must have no /metrics")
    elif metrics.status_code != 200 or route_count(variant, base) < 1:
        raise BenchError(f"{variant.name}: /metrics does not count GET {ROUTE}:\n"
                         f"{metrics.text[:2000]}")
    if variant.sampled:
        # Each request makes several spans (the server's and FastAPI's operation spans): all
        # 200 sampled would make over 600, none sampled 0.
        for n in range(200):
            httpx.get(f"{base}/items/{n}", timeout=5)
        made = spans_exported(base) - spans_before
        if not 0 < made < 200:
            raise BenchError(f"{variant.name}: {made} spans for 200 requests, 1 in 10 sampled")
    elif variant.spans and spans_exported(base) <= spans_before:
        raise BenchError(f"{variant.name}: no span of GET /items/7 reached the exporter")
    if not variant.spans and httpx.get(base + SPANS_PATH, timeout=5).status_code != 404:
        raise BenchError(f"{variant.name}: records spans it should not")
    if variant.logs:
        logs = Path(env["BENCH_DATA_DIR"], "logs")
        _wait_for(lambda: any('"/items/7"' in f.read_text() for f in logs.glob("access_*.log")),
                  10, f"{variant.name}: no access line for /items/7 in {logs}")
        _wait_for(lambda: int(httpx.get(env["BENCH_LOKI_URL"] + "/count").text) > 0,
                  15, f"{variant.name}: the Loki receiver got no line")


def loki_lines(env: dict[str, str]) -> int:
    """Lines the variant's Loki receiver accepted so far (0 without one)."""
    url = env.get("BENCH_LOKI_URL")
    return int(httpx.get(url + "/count", timeout=10).text) if url else 0


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """The server's environment: ours without EXPORTER_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EXPORTER_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    return {**env, **extra}
