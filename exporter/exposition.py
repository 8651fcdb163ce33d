"""The `/metrics` endpoint: OpenMetrics (with exemplars) when asked for, classic text otherwise."""

from __future__ import annotations

import gzip

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from starlette.requests import Request
from starlette.responses import Response

from exporter.collectors.system import HostCollector

# Below this size gzip costs more than it saves.
_GZIP_MIN_BYTES = 1024


def multiprocess_registry(directory: str, disk_paths: tuple[str, ...]) -> CollectorRegistry:
    """A registry that adds up every worker's metric files, plus the host-wide collectors.

    What multiprocess mode keeps and loses is documented in docs/multiprocess.md.
    """
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    HostCollector(disk_paths, registry=registry)
    PlatformCollector(registry=registry)
    return registry


class MetricsEndpoint:
    """A Starlette endpoint that renders `registry` in the format the scraper asked for."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    async def __call__(self, request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = encoder(self._registry)
        headers = {}
        if len(body) >= _GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=content_type, headers=headers)
