"""The trace id across the queue, and the task fields of the worker's log lines.

The sender puts the current trace into the task message's headers (`traceparent` and
`x-trace-id`); the worker restores it into the trace contextvar while the task runs, so the
JSON formatter and error capture see the same trace id as the request that sent the task.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from typing import Any, NamedTuple

from exporter.http.trace import TraceContext, _current, current_trace, trace_from_headers

TRACEPARENT = "traceparent"
TRACE_ID_HEADER = "x-trace-id"
_HEX32 = frozenset("0123456789abcdef")
_TRACE_HEADERS = ((TRACEPARENT, b"traceparent"), (TRACE_ID_HEADER, b"x-request-id"))


class TaskFields(NamedTuple):
    """What the worker's log lines say about the task being run."""

    task_id: str | None
    task_name: str | None
    queue: str | None


_task: ContextVar[TaskFields | None] = ContextVar("exporter_celery_task", default=None)
_tuple_new = tuple.__new__


def inject_trace(headers: dict[str, Any]) -> None:
    """Add the current trace to a task message's `headers` (kept when the caller set one)."""
    trace = current_trace()
    if trace is None or TRACEPARENT in headers or TRACE_ID_HEADER in headers:
        return
    headers[TRACE_ID_HEADER] = trace.trace_id
    # A trace id taken from X-Request-ID is not a W3C id: it travels in x-trace-id alone.
    if len(trace.trace_id) == 32 and set(trace.trace_id) <= _HEX32:
        headers[TRACEPARENT] = f"00-{trace.trace_id}-{trace.span_id}-01"


TASK_METHOD = "TASK"  # the error store's method of a task's errors (its route: the task name)


def trace_of(request: Any, route: str | None = None) -> TraceContext:
    """The task's trace: continued from its headers, else a new one for this run. `request` is
    the task's request context, or the request dict a worker hands to the task's tracer.
    With a `route` (the task's bounded name), errors logged or reported while the task runs
    are filed under it, as a request's are under its route template."""
    raw: list[tuple[bytes, bytes]] = []
    headers = None
    is_dict = isinstance(request, dict)
    # A custom header is an attribute of the request (protocol 2) or in `request.headers`.
    for name, as_http in _TRACE_HEADERS:
        value = request.get(name) if is_dict else getattr(request, name, None)
        if value is None:
            if headers is None:
                headers = (request.get("headers") if is_dict
                           else getattr(request, "headers", None)) or {}
            if isinstance(headers, dict):
                value = headers.get(name)
        if isinstance(value, str):
            raw.append((as_http, value.encode("latin-1", "replace")))
    return trace_from_headers(raw, route, TASK_METHOD if route is not None else None)


class TaskScope(NamedTuple):
    """Tokens to put the contextvars back when the task ends."""

    trace: Token[TraceContext | None]
    task: Token[TaskFields | None]


def enter_task(
    request: Any, task_name: str | None, queue: str | None, task_id: str | None = None,
    route: str | None = None,
) -> TaskScope:
    """Set the task's trace and log fields for the code that runs it; `route` (the task's
    bounded name) files the errors captured meanwhile."""
    if task_id is None:
        task_id = getattr(request, "id", None)
    # tuple.__new__: a NamedTuple's own __new__ is one more Python call per task.
    fields = _tuple_new(TaskFields, (task_id, task_name, queue))
    return _tuple_new(TaskScope, (_current.set(trace_of(request, route)), _task.set(fields)))


def leave_task(scope: TaskScope) -> None:
    """Undo `enter_task` (the pool process runs the next task with a clean context)."""
    try:
        _task.reset(scope.task)
        _current.reset(scope.trace)
    except ValueError:  # set in another context (eager tasks in a thread): clear instead
        _task.set(None)
        _current.set(None)


def current_task_fields() -> TaskFields | None:
    """The task being run in this context, or None."""
    return _task.get()


class TaskLogFilter(logging.Filter):
    """Adds `task_id`, `task_name` and `queue` to records logged while a task runs.

    The task arguments Celery's own lines carry (`data.args`, `data.kwargs`: reprs, where
    `'password': '...'` hides from key-based redaction) are scrubbed by the JSON formatter,
    which scrubs every string of a line as free text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._add_fields(record)
        except Exception:  # a log line is never lost to its decoration
            pass
        return True

    @staticmethod
    def _add_fields(record: logging.LogRecord) -> None:
        attrs = record.__dict__
        fields = _task.get()
        if fields is not None:
            for key, value in zip(TaskFields._fields, fields, strict=True):
                if value is not None and key not in attrs:
                    attrs[key] = value
