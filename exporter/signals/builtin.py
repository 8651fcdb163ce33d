"""The signals the kit knows: one entry each. Adding a signal is adding an entry here."""

from __future__ import annotations

from exporter.config.dependencies import DATABASE_KINDS
from exporter.signals.http_names import DURATION_BUCKETS, ERRORS, REQUESTS
from exporter.signals.model import Display, Fixture, Signal
from exporter.signals.query import Gauge, Level, Metric, Quantile, Rate, Ratio

HTTP_RECORDING_GROUP = "exporter-http-recording"
CELERY_RECORDING_GROUP = "exporter-celery-recording"
_SERVICE = (Level("service", ("service",)), Level("service_route", ("service", "route")))
_TASK_LEVELS = (Level("service_task", ("service", "task")),)
_PCT, _DUR = "{{ $value | humanizePercentage }}", "{{ $value | humanizeDuration }}"
_HOST = "{{ $labels.instance }} ({{ $labels.service }})"
_DEP = "{{ $labels.name }} of {{ $labels.service }}"

_REQUESTS = Rate(REQUESTS, record="{level}:http_requests:rate{window}")
_ERRORS = Rate(ERRORS, record="{level}:http_request_errors:rate{window}")
_BUCKETS = Rate(DURATION_BUCKETS, keep=("le",),
                record="{level}:http_request_duration_seconds_bucket:rate{window}")
_ROUTE = {"method": "GET", "route": "/items"}
_TASKS = Rate(Metric("celery_tasks_total", (("state", "=~", "succeeded|failed"),)),
              record="{level}:celery_tasks:rate{window}", subject=("task",))
_TASK_FAILURES = Rate(Metric("celery_tasks_total", (("state", "=", "failed"),)),
                      record="{level}:celery_task_failures:rate{window}", subject=("task",))
_TASK_LABELS = {"queue": "celery", "task": "app.tasks.charge"}
_CELERY = Fixture(_TASK_LABELS, {"state": "failed"}, {"state": "succeeded"}, job="celery",
                  port=9808)


def _latency(q: int) -> Signal:
    return Signal(
        f"http_latency_p{q}_seconds", f"Latency p{q}", "seconds", "http",
        Quantile(q / 100, _BUCKETS),
        f"{q}th percentile of HTTP request duration (arrival to last response byte).",
        f"The p{q} latency of {{{{ $labels.service }}}} over {{window}} is {_DUR}",
        Display("service", "Latency p50 / p95 / p99", f"{{{{service}}}} p{q}",
                stat="Latency p95" if q == 95 else "", tile=q == 95),
        Fixture(_ROUTE), record=f"{{level}}:http_request_duration_seconds:p{q}_{{window}}",
        levels=_SERVICE, rule_group=HTTP_RECORDING_GROUP,
    )


BUILTIN: list[Signal] = [
    Signal(
        "cpu_usage_ratio", "CPU", "ratio", "system", Gauge(Metric("system_cpu_usage_ratio")),
        "Busy share of all CPUs of the host, 0..1.",
        f"CPU usage of {_HOST} is {_PCT}",
        Display("host", "CPU usage", "{{instance}}", stat="CPU"),
    ),
    Signal(
        "memory_usage_ratio", "Memory", "ratio", "system",
        Gauge(Metric("system_memory_usage_ratio")),
        "Share of the host's memory in use (total minus available), 0..1.",
        f"Memory usage of {_HOST} is {_PCT}",
        Display("host", "Memory usage", "{{instance}}", stat="Memory"),
    ),
    Signal(
        "disk_usage_ratio", "Disk", "ratio", "system",
        Gauge(Metric("system_disk_usage_ratio"), ("mountpoint",)),
        "Share of a filesystem in use, per mount point (EXPORTER_DISK_PATHS), 0..1.",
        f"Disk usage of {{{{ $labels.mountpoint }}}} on {_HOST} is {_PCT}",
        Display("host", "Disk usage", "{{instance}} {{mountpoint}}", stat="Fullest disk"),
        Fixture({"mountpoint": "/"}),
    ),
    Signal(
        "http_requests_per_second", "Requests per second", "per_second", "http", _REQUESTS,
        "HTTP requests answered per second (every status).",
        "{{ $labels.service }} answered {{ $value | humanize }} requests/s over {window}",
        Display("service", "Requests per second", stat="Requests per second"),
        Fixture({**_ROUTE, "status": "200"}), levels=_SERVICE,
        rule_group=HTTP_RECORDING_GROUP,
    ),
    Signal(
        "http_error_ratio", "Error rate", "ratio", "http", Ratio(_ERRORS, _REQUESTS),
        "Share of HTTP responses with a 5xx status, 0..1; 0 without any 5xx.",
        f"{_PCT} of the HTTP responses of {{{{ $labels.service }}}} over {{window}} were 5xx",
        Display("service", "Error ratio (5xx)", stat="Error ratio (5xx)"),
        Fixture(_ROUTE, {"status": "500"}, {"status": "200"}),
        record="{level}:http_request_errors:ratio_rate{window}", levels=_SERVICE,
        rule_group=HTTP_RECORDING_GROUP,
    ),
    _latency(50),
    _latency(95),
    _latency(99),
    Signal(
        "database_latency_seconds", "Database round trip", "seconds", "dependency",
        Gauge(Metric("dependency_latency_seconds",
                     (("kind", "=~", "|".join(sorted(DATABASE_KINDS))),)), ("name", "kind")),
        "Round trip of the last SELECT 1, per database dependency (EXPORTER_DEPENDENCIES).",
        f"The {{{{ $labels.kind }}}} database {_DEP} answers SELECT 1 in {_DUR}",
        Display("dependencies", "Database round trip (SELECT 1)", "{{name}} ({{kind}})"),
        Fixture({"kind": "postgresql", "name": "db"}),
    ),
    Signal(
        "redis_latency_seconds", "Redis round trip", "seconds", "dependency",
        Gauge(Metric("dependency_latency_seconds", (("kind", "=", "redis"),)),
              ("name", "kind")),
        "Round trip of the last PING, per Redis dependency (EXPORTER_DEPENDENCIES).",
        f"The Redis dependency {_DEP} answers PING in {_DUR}",
        Display("dependencies", "Redis round trip (PING)", "{{name}}"),
        Fixture({"kind": "redis", "name": "cache"}),
    ),
    Signal(
        "queue_depth", "Queue depth", "count", "queue",
        Gauge(Metric("queue_depth"), ("backend", "queue")),
        "Messages waiting in a queue (EXPORTER_QUEUES; Redis lists with Celery's priority "
        "sub-queues, streams, RabbitMQ ready messages).",
        "Queue {{ $labels.queue }} ({{ $labels.backend }}) of {{ $labels.service }} holds "
        "{{ $value | humanize }} messages",
        Display("dependencies", "Queue depth", "{{backend}} {{queue}}"),
        Fixture({"backend": "redis", "queue": "jobs"}),
    ),
    Signal(
        "celery_tasks_per_second", "Tasks/s", "per_second", "celery", _TASKS,
        "Celery tasks finished (succeeded or failed) per second, per task.",
        "The {{ $labels.task }} tasks of {{ $labels.service }} finish at "
        "{{ $value | humanize }}/s over {window}",
        Display("celery", "Tasks per second by task", "{{task}}", stat="Tasks per second"),
        Fixture({**_TASK_LABELS, "state": "succeeded"}, job="celery", port=9808),
        levels=_TASK_LEVELS, rule_group=CELERY_RECORDING_GROUP,
    ),
    Signal(
        "celery_task_failure_ratio", "Task failure rate", "ratio", "celery",
        Ratio(_TASK_FAILURES, _TASKS),
        "Share of a Celery task's finished runs that failed, per task, 0..1.",
        f"{_PCT} of the {{{{ $labels.task }}}} tasks of {{{{ $labels.service }}}} failed over "
        "{window}",
        Display("celery", "Failure ratio by task", "{{task}}", stat="Failure ratio"),
        _CELERY, record="{level}:celery_task_failures:ratio_rate{window}", levels=_TASK_LEVELS,
        rule_group=CELERY_RECORDING_GROUP,
    ),
    Signal(
        "celery_task_duration_p95_seconds", "Task run time p95", "seconds", "celery",
        Quantile(0.95, Rate(Metric("celery_task_duration_seconds_bucket"), keep=("le",),
                            subject=("task",))),
        "95th percentile of a Celery task's run time, per task.",
        f"The p95 run time of the {{{{ $labels.task }}}} tasks of {{{{ $labels.service }}}} "
        f"over {{window}} is {_DUR}",
        Display("celery", "Run time p95 by task", "{{task}}"),
        Fixture(_TASK_LABELS, job="celery", port=9808),
        record="{level}:celery_task_duration_seconds:p95_{window}", levels=_TASK_LEVELS,
        rule_group=CELERY_RECORDING_GROUP,
    ),
]
