"""The HTTP metrics under the OpenTelemetry HTTP semantic-convention names
(`EXPORTER_HTTP_METRICS=semconv`), as opentelemetry-exporter-prometheus writes them:

- `http_server_request_duration_seconds` (histogram) by `http_request_method`, `http_route`,
  `http_response_status_code`, and `error_type` on failures: the status code as a string for a
  5xx response, the exception's class name (`module.Class`, builtins bare, as FastAPI's own
  telemetry writes it) when one escaped the app;
- `http_server_active_requests` (gauge) by `http_request_method` and `http_route` (the kit
  knows the route when the request starts; the conventions' `url_scheme` is left out).

There is no request counter: the histogram's `_count` is the request count, as in OTel.
`SemconvSeries` keeps the default `Series`' lock-free request path and splits its histogram by
(status, error type) only when folding.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar, Sample

from exporter.http.series import Series, escape_label

DURATION = "http_server_request_duration_seconds"
ACTIVE = "http_server_active_requests"
DURATION_HELP = "Duration of HTTP server requests (arrival to last response byte)."
ACTIVE_HELP = "Number of active HTTP server requests."
LABELS = ("http_request_method", "http_route", "http_response_status_code", "error_type")
ACTIVE_LABELS = ("http_request_method", "http_route")


def error_type(error: BaseException) -> str:
    """`error.type` of an exception: its class's qualified name, with its module unless
    builtin (`RuntimeError`, `sqlalchemy.exc.OperationalError`)."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class _Outcome:
    """The histogram of one (status, error type) of a series."""

    __slots__ = ("counts", "exemplars", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.exemplars: list[tuple[str, float, float] | None] = [None] * size
        self.sum = 0.0


class SemconvSeries(Series):
    """A (method, route) pair's numbers, its histogram split by (status, error type)."""

    __slots__ = ("outcomes",)

    def __init__(self, bounds: tuple[float, ...], method: str, route: str) -> None:
        super().__init__(bounds, method, route)
        self.labels = (f'http_request_method="{escape_label(method)}",'
                       f'http_route="{escape_label(route)}"')
        self.outcomes: dict[tuple[int, str], _Outcome] = {}

    def failed(self, trace_id: str, error: BaseException) -> None:
        """An exception escaped the app during the request `trace_id`, already finished: its
        error type becomes the exception's (unless a scrape folded it in the meantime)."""
        with self.lock:
            pending = self.pending
            for index in range(len(pending) - 2, 0, -4):
                if pending[index] == trace_id:
                    status = pending[index - 2]
                    code = status[0] if isinstance(status, tuple) else status
                    pending[index - 2] = (code, error_type(error))
                    return

    def fold(self) -> None:
        with self.lock:
            size = len(self.pending)
            if not size:
                return
            batch = self.pending[:size]
            del self.pending[:size]
            bounds, outcomes = self.bounds, self.outcomes
            items = iter(batch)
            for status, seconds, trace_id, ended in zip(items, items, items, items, strict=True):
                if isinstance(status, tuple):
                    key = status
                else:
                    key = (status, str(status) if status >= 500 else "")
                outcome = outcomes.get(key)
                if outcome is None:
                    outcome = outcomes[key] = _Outcome(len(bounds))
                index = bisect_left(bounds, seconds)
                outcome.counts[index] += 1
                outcome.sum += seconds
                outcome.exemplars[index] = (trace_id, seconds, ended)
            self.version += 1


class _Row:
    __slots__ = ("active", "labels", "outcomes", "series")

    def __init__(self, series: SemconvSeries, to_wall: float) -> None:
        series.fold()
        with series.lock:
            self.outcomes = [
                (status, error, list(o.counts), o.sum, [
                    None if e is None else (e[0], e[1], e[2] + to_wall) for e in o.exemplars])
                for (status, error), o in sorted(series.outcomes.items())
            ]
        self.active = len(series.active)
        self.series, self.labels = series, series.labels


def _outcome_labels(row: _Row, status: int, error: str) -> str:
    extra = f',error_type="{escape_label(error)}"' if error else ""
    return f'{row.labels},http_response_status_code="{status}"{extra}'


class SemconvFamily(Metric):
    """One of the two families of one scrape, rendered to text directly."""

    def __init__(self, name: str, kind: str, rows: list[_Row], le: list[str]) -> None:
        super().__init__(name, DURATION_HELP if name == DURATION else ACTIVE_HELP, kind)
        self._rows, self._le = rows, le
        self._samples: list[Sample] | None = None

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = self._build()
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._samples = value or None

    def _build(self) -> list[Sample]:
        out: list[Sample] = []
        for row in self._rows:
            base = {"http_request_method": row.series.method, "http_route": row.series.route}
            if self.name == ACTIVE:
                out.append(Sample(ACTIVE, base, float(row.active)))
                continue
            for status, error, counts, total, exemplars in row.outcomes:
                labels = {**base, "http_response_status_code": str(status)}
                if error:
                    labels["error_type"] = error
                cumulative = 0
                for le, count, ex in zip(self._le, counts, exemplars, strict=True):
                    cumulative += count
                    exemplar = None if ex is None else Exemplar({"trace_id": ex[0]}, ex[1], ex[2])
                    out.append(Sample(f"{DURATION}_bucket", {**labels, "le": le},
                                      float(cumulative), None, exemplar))
                out.append(Sample(f"{DURATION}_count", labels, float(cumulative)))
                out.append(Sample(f"{DURATION}_sum", labels, total))
        return out

    def render(self, openmetrics: bool) -> str:
        """The family in the classic text format, or in OpenMetrics (with exemplars)."""
        kind = "histogram" if self.name == DURATION else "gauge"
        parts = [f"# HELP {self.name} {self.documentation}\n# TYPE {self.name} {kind}\n"]
        for row in self._rows:
            if self.name == ACTIVE:
                parts.append(f"{ACTIVE}{{{row.labels}}} {row.active}.0\n")
                continue
            for status, error, counts, total, exemplars in row.outcomes:
                labels = _outcome_labels(row, status, error)
                cumulative = 0
                for le, count, ex in zip(self._le, counts, exemplars, strict=True):
                    cumulative += count
                    line = f'{DURATION}_bucket{{{labels},le="{le}"}} {cumulative}.0'
                    if openmetrics and ex is not None:
                        line += f' # {{trace_id="{escape_label(ex[0])}"}} {ex[1]!r} {ex[2]!r}'
                    parts.append(line + "\n")
                parts.append(f"{DURATION}_count{{{labels}}} {cumulative}.0\n")
                parts.append(f"{DURATION}_sum{{{labels}}} {float(total)!r}\n")
        return "".join(parts)


def semconv_families(series: list[Any], le: list[str], to_wall: float) -> list[Any]:
    """The two families of one scrape over `series` (SemconvSeries)."""
    rows = [_Row(one, to_wall) for one in series]
    return [SemconvFamily(DURATION, "histogram", rows, le),
            SemconvFamily(ACTIVE, "gauge", rows, le)]
