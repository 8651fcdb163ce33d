"""Celery's part of `exporter render`: recording rules, the task-failure alert, its promtool
case and the Celery dashboard. The failure alert uses the HTTP error-rate threshold: a task
that fails is an error like a 5xx response is."""

from __future__ import annotations

from typing import Any

from exporter.render.grafana import dashboard, panel, prom, query_variable
from exporter.render.links import DASHBOARDS
from exporter.render.rule import AlertRule, threshold_text
from exporter.thresholds import Signal, Thresholds, format_duration

CELERY_RECORDING_GROUP = "exporter-celery-recording"
FAILURE_ALERT = "CeleryTaskFailureRate"
_FINISHED = 'state=~"succeeded|failed"'
_S = 'service=~"$service"'
_ST = 'service=~"$service", task=~"$task"'


def tasks_rate(window: str) -> str:
    """Finished tasks per second, by service and task."""
    return f"service_task:celery_tasks:rate{window}"


def failures_rate(window: str) -> str:
    """Failed tasks per second, by service and task."""
    return f"service_task:celery_task_failures:rate{window}"


def failure_ratio(window: str) -> str:
    """Share of finished tasks that failed, 0..1."""
    return f"service_task:celery_task_failures:ratio_rate{window}"


def duration_p95(window: str) -> str:
    """95th percentile of task run time, seconds."""
    return f"service_task:celery_task_duration_seconds:p95_{window}"


def celery_recording_group(window: str) -> dict[str, Any]:
    """The Celery rule group of `prometheus/rules/recording.yml`."""
    w = window
    return {"name": CELERY_RECORDING_GROUP, "rules": [
        {"record": tasks_rate(w),
         "expr": f"sum by (service, task) (rate(celery_tasks_total{{{_FINISHED}}}[{w}]))"},
        {"record": failures_rate(w),
         "expr": f'sum by (service, task) (rate(celery_tasks_total{{state="failed"}}[{w}]))'},
        # `or ... * 0`: a task that never failed reads 0 %, not "no data".
        {"record": failure_ratio(w),
         "expr": f"({failures_rate(w)} or {tasks_rate(w)} * 0) / {tasks_rate(w)}"},
        {"record": duration_p95(w),
         "expr": "histogram_quantile(0.95, sum by (service, task, le) "
                 f"(rate(celery_task_duration_seconds_bucket[{w}])))"},
    ]}


def celery_rules(thresholds: Thresholds) -> list[AlertRule]:
    """The task-failure alert, on the (lowest) error-rate threshold; none without one."""
    limits = thresholds.for_signal(Signal.http_error_ratio)
    if not limits:
        return []
    limit = min(limits, key=lambda t: t.above)
    w = thresholds.render.rate_window
    text = threshold_text(Signal.http_error_ratio, limit.above)
    return [AlertRule(
        FAILURE_ALERT, f"{failure_ratio(w)} > {limit.above!r}", limit.for_seconds,
        limit.severity, f"More than {text} of a Celery task's runs fail",
        f"{{{{ $value | humanizePercentage }}}} of the {{{{ $labels.task }}}} tasks of "
        f"{{{{ $labels.service }}}} failed over {w}; the threshold is {text} for "
        f"{format_duration(limit.for_seconds)}.",
        "celery", above=limit.above,
    )]


def failure_series(ratio: float, who: str, steps: int) -> tuple[list[tuple[str, str]],
                                                                    dict[str, str]]:
    """promtool input: 100 finished runs a step, `ratio` of them failed; and the alert labels."""
    labels = f'job="celery",instance="{who}:9808",service="{who}",task="app.tasks.charge",'
    ok, failed = 100.0 * (1.0 - ratio), 100.0 * ratio
    series = [
        (f'celery_tasks_total{{{labels}queue="celery",state="succeeded"}}', f"0+{ok!r}x{steps}"),
        (f'celery_tasks_total{{{labels}queue="celery",state="failed"}}', f"0+{failed!r}x{steps}"),
    ]
    return series, {"service": who, "task": "app.tasks.charge"}


def celery_dashboard(thresholds: Thresholds, description: str) -> dict[str, Any]:
    """Task throughput, failures, run time, backlog and workers."""
    w = thresholds.render.rate_window
    limits = thresholds.for_signal(Signal.http_error_ratio)
    errors = min(t.above for t in limits) if limits else None
    panels = [
        panel("Tasks per second", [prom(f"sum({tasks_rate(w)}{{{_ST}}})")], kind="stat",
              unit="ops", width=6, height=4),
        panel("Failure ratio", [prom(f"max({failure_ratio(w)}{{{_ST}}})")], kind="stat",
              unit="percentunit", threshold=errors, width=6, height=4),
        panel("Tasks running", [prom(f"sum(celery_tasks_in_progress{{{_ST}}})")], kind="stat",
              width=6, height=4),
        panel("Workers", [prom(f"sum(celery_workers{{{_S}}})")], kind="stat", width=6,
              height=4),
        panel("Tasks per second by state",
              [prom(f"sum by (state) (rate(celery_tasks_total{{{_ST}}}[$__rate_interval]))",
                    "{{state}}")], unit="ops"),
        panel("Failure ratio by task",
              [prom(f"{failure_ratio(w)}{{{_ST}}}", "{{task}}")], unit="percentunit",
              threshold=errors),
        panel("Run time p95 by task", [prom(f"{duration_p95(w)}{{{_ST}}}", "{{task}}")],
              unit="s"),
        panel("Tasks running by task",
              [prom(f"sum by (task) (celery_tasks_in_progress{{{_ST}}})", "{{task}}")]),
        panel("Queue depth (waiting messages)",
              [prom(f"queue_depth{{{_S}}}", "{{backend}} {{queue}}")],
              description="Celery's queues, as configured in the app (task_queues)."),
        panel("Queue growth (messages/s over 10m)",
              [prom(f"deriv(queue_depth{{{_S}}}[10m])", "{{backend}} {{queue}}")],
              threshold=0.0),
    ]
    variables = [
        query_variable("service", "label_values(celery_tasks_total, service)", "service"),
        query_variable("task", f"label_values(celery_tasks_total{{{_S}}}, task)", "task"),
    ]
    return dashboard(*DASHBOARDS["celery"], description, panels, variables)
