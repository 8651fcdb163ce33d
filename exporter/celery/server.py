"""The worker's `/metrics`: a small HTTP server in the main worker process."""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from exporter.http.exposition import multiprocess_registry

log = logging.getLogger("exporter.celery")


class MetricsServer:
    """Serves every pool process's metric files added up, plus `local`'s collectors (queue
    depth), on `host:port`. A port in use is logged, never fatal to the worker."""

    def __init__(self, host: str, port: int, directory: str, local: CollectorRegistry) -> None:
        self.host = host
        self.port = port
        self.registry = multiprocess_registry(directory, local)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start serving; False (logged) when the port cannot be bound."""
        if self._server is not None:
            return True
        try:
            self._server, self._thread = start_http_server(
                self.port, addr=self.host, registry=self.registry
            )
        except OSError as exc:
            log.warning("celery metrics server not started on %s:%d: %s",
                        self.host, self.port, exc)
            return False
        self.port = self._server.server_port
        log.info("celery metrics on http://%s:%d/metrics", self.host, self.port)
        return True

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving (idempotent)."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout)
