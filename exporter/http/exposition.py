"""The `/metrics` endpoint: OpenMetrics (with exemplars) when asked for, classic text otherwise."""

from __future__ import annotations

import gzip
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as classic_text
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_text
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from exporter.metric_files import forget_dead_processes

# Below this size gzip costs more than it saves.
_GZIP_MIN_BYTES = 1024


# Per-process collectors: the answering worker's figures would pass for the whole service's.
_PER_PROCESS = ("process_", "python_gc_")


class MultiprocessView(Collector):
    """Every worker's metric files added up, plus what this worker's registry holds beside
    them: host, dependency and queue gauges (the same whichever worker answers).

    What multiprocess mode keeps and loses is documented in docs/multiprocess.md.
    """

    def __init__(self, directory: str, local: CollectorRegistry) -> None:
        self._directory = directory
        self._files = MultiProcessCollector(None, path=directory)  # type: ignore[no-untyped-call]
        self._local = local

    def collect(self) -> Iterable[Metric]:
        # A process killed outright (kill -9, OOM) never marked itself dead: its in-flight
        # gauges would stay in the sum until the directory is cleared.
        try:
            forget_dead_processes(self._directory)
        except OSError:
            pass
        shared = list(self._files.collect())  # type: ignore[no-untyped-call]
        names = {family.name for family in shared}
        yield from shared
        for family in self._local.collect():
            # A metric object's own values are this worker's share, already in the files.
            if family.name not in names and not family.name.startswith(_PER_PROCESS):
                yield family


def multiprocess_registry(directory: str, local: CollectorRegistry) -> CollectorRegistry:
    """The registry `/metrics` renders in multiprocess mode (see `MultiprocessView`)."""
    registry = CollectorRegistry()
    registry.register(MultiprocessView(directory, local))
    return registry


CLASSIC_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_EOF = b"# EOF\n"


class _One:
    """Just one family, for prometheus-client's encoders."""

    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterable[Metric]:
        return [self._family]


def wants_openmetrics(accept: str) -> bool:
    """True when the scraper's Accept header asks for OpenMetrics (it carries exemplars)."""
    return any(
        part.split(";", 1)[0].strip() == "application/openmetrics-text"
        for part in accept.split(",")
    )


def render(registry: CollectorRegistry, openmetrics: bool) -> bytes:
    """The registry in the classic text format, or in OpenMetrics 1.0.

    Families that can render themselves (the HTTP ones, see `http_families`) do so; the others
    go through prometheus-client's own encoder, one family at a time.
    """
    parts: list[bytes] = []
    for family in registry.collect():
        own = getattr(family, "render", None)
        if own is not None:
            parts.append(own(openmetrics).encode())
        elif openmetrics:
            parts.append(openmetrics_text(_One(family)).removesuffix(_EOF))  # type: ignore[no-untyped-call]
        else:
            parts.append(classic_text(_One(family)))
    if openmetrics:
        parts.append(_EOF)
    return b"".join(parts)


class MetricsEndpoint:
    """A Starlette endpoint that renders `registry` in the format the scraper asked for."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    async def __call__(self, request: Request) -> Response:
        openmetrics = wants_openmetrics(request.headers.get("accept", ""))
        body = render(self._registry, openmetrics)
        content_type = OPENMETRICS_TYPE if openmetrics else CLASSIC_TYPE
        headers = {}
        if len(body) >= _GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=content_type, headers=headers)
