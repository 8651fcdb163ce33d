"""The worker's lifecycle: metrics files, logging, the /metrics server, queue depth, shutdown.

`worker_init` and `worker_ready` run in the main worker process before and after the pool
starts; `worker_process_init` and `worker_process_shutdown` in each pool child after it forks
and before it exits (children leave through `os._exit`, so atexit handlers do not flush them).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import mark_process_dead

from exporter.celery.context import TaskLogFilter
from exporter.celery.directory import enable_multiprocess, release
from exporter.celery.errors import TaskErrors
from exporter.celery.metrics import CeleryMetrics
from exporter.celery.queues import celery_queues
from exporter.celery.server import MetricsServer
from exporter.celery.signals import TaskSignals
from exporter.config import Settings
from exporter.health.probes.runner import ProbeRunner
from exporter.health.queue_collector import QueueCollector
from exporter.logs.setup import setup_logging
from exporter.logs.sinks import LogSinks

log = logging.getLogger("exporter.celery")


class WorkerInstrumentation:
    """What `instrument_celery` sets up inside a worker; created by `worker_init`."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.metrics_dir = enable_multiprocess()
        self.directory = self.metrics_dir.path
        self.registry = CollectorRegistry(auto_describe=True)
        names = [name for name in app.tasks if not name.startswith("celery.")]
        self.metrics = CeleryMetrics(self.registry, settings.celery_max_task_names, sorted(names))
        self.errors = TaskErrors(settings, self.registry)
        self.signals = TaskSignals(self.metrics, self.errors)
        self.local = CollectorRegistry()  # beside the files: the queue-depth gauges
        self.queues = celery_queues(app) if settings.celery_queue_depth else []
        self.prober = ProbeRunner(
            (), self.queues, interval=settings.probe_interval_seconds,
            timeout=settings.probe_timeout_seconds,
        )
        QueueCollector(self.prober, registry=self.local)
        self.server: MetricsServer | None = None
        if settings.celery_metrics_port:
            self.server = MetricsServer(settings.celery_metrics_host, settings.celery_metrics_port,
                                        self.directory, self.local)
        self.log_sinks: LogSinks | None = None
        self._pid = os.getpid()
        self._stopped = False
        if self.metrics_dir.made:
            # When the worker ends without worker_shutdown (an error while starting).
            atexit.register(self._release_directory)

    # --- logging ---

    def setup_logging(self, loglevel: int | str | None = None) -> None:
        """JSON logs to stdout, the daily files and Loki, with the task fields; replaces the
        sinks a parent process left behind (their threads did not survive the fork)."""
        # In a pool child sys.stdout is Celery's LoggingProxy (worker_redirect_stdouts): a stdout
        # handler writing into it would log every line again, as `celery.redirected`.
        redirected, sys.stdout = sys.stdout, sys.__stdout__ or sys.stdout
        try:
            self.log_sinks = setup_logging(self.settings)
        finally:
            sys.stdout = redirected
        # On the first of our handlers only: it runs first and decorates the record in place,
        # the others (and the formatter's cached line) see the result.
        self.log_sinks.handlers[0].addFilter(TaskLogFilter())
        if loglevel:  # the worker's --loglevel wins over EXPORTER_LOG_LEVEL
            logging.getLogger().setLevel(loglevel)

    # --- main process ---

    def ready(self) -> None:
        """The pool is up: count this worker, read queues, serve /metrics."""
        self.metrics.workers.set(1)
        self.metrics.start_flushing()
        self.errors.capture()  # logger.exception() and capture_exception() report from now on
        self.prober.start()
        if self.server is not None:
            self.server.start()

    def shutdown(self) -> None:
        """Stop serving and probing; flush errors and logs (idempotent, main process only)."""
        if self._stopped or os.getpid() != self._pid:
            return
        self._stopped = True
        self.metrics.workers.set(0)
        self.metrics.stop_flushing()
        self.prober.stop()
        if self.server is not None:
            self.server.stop()
        self.errors.stop()
        mark_process_dead(os.getpid(), path=self.directory)  # type: ignore[no-untyped-call]
        if self.log_sinks is not None:
            self.log_sinks.close()
        # Before Celery's SIGHUP restart execs the worker again (its atexit runs first).
        self._release_directory()

    def _release_directory(self) -> None:
        if os.getpid() == self._pid:  # never from a pool process
            release(self.metrics_dir)

    # --- pool processes ---

    def process_started(self) -> None:
        """A pool child after the fork: its own log sinks and error capture."""
        if self.settings.celery_setup_logging:
            level = logging.getLogger().level
            self.setup_logging(level)
        self.metrics.start_flushing()
        self.errors.capture()
        if self.signals.wrap_tracers(self.app.tasks):
            from celery import signals

            # This process's copies of the receivers only: the main process keeps its own.
            signals.task_prerun.disconnect(self.signals.on_prerun)
            signals.task_postrun.disconnect(self.signals.on_postrun)

    def process_exiting(self) -> None:
        """A pool child about to exit: flush its metrics, errors and logs; drop its live
        gauges."""
        self.metrics.stop_flushing()
        self.errors.stop()
        if self.log_sinks is not None:
            self.log_sinks.close()
        mark_process_dead(os.getpid(), path=self.directory)  # type: ignore[no-untyped-call]
