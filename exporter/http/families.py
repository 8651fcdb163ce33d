"""The HTTP metric families of one scrape: rendered straight to text, expanded only on demand.

prometheus-client turns each sample into a `Sample` tuple and formats it label by label: about
10 µs a line, so 100 routes x 4 methods x 5 statuses (some 13,000 lines) take over 100 ms.
Here each series' label text is escaped once, a series that did not change since the last
scrape reuses its text, and `Sample` tuples are built only when a consumer reads `.samples`
(`registry.get_sample_value`, tests). The text matches prometheus-client's exposition formats.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar, Sample

from exporter.http.series import Series, escape_label

REQUESTS = "http_requests"
DURATION = "http_request_duration_seconds"
IN_PROGRESS = "http_requests_in_progress"


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}.0"
    return repr(float(value))


class Row:
    """One series' numbers, copied under its lock at collect time."""

    __slots__ = (
        "counts",
        "exemplars",
        "in_progress",
        "labels",
        "series",
        "statuses",
        "sum",
        "version",
    )

    def __init__(self, series: Series, to_wall: float) -> None:
        """`to_wall`: added to a `perf_counter()` time, gives the wall-clock time."""
        series.fold()
        with series.lock:
            self.counts = list(series.counts)
            exemplars = list(series.exemplars)
            self.sum = series.sum
            self.statuses = sorted(series.statuses.items())
            self.version = series.version
        self.in_progress = len(series.active)
        self.exemplars = [
            None if one is None else (one[0], one[1], one[2] + to_wall) for one in exemplars
        ]
        self.series = series
        self.labels = series.labels


class Snapshot:
    """All rows of one collect(), shared by the three families."""

    def __init__(self, rows: list[Row], le: list[str], helps: dict[str, str]) -> None:
        self.rows, self.le, self.helps = rows, le, helps

    def text(self, family: str, openmetrics: bool) -> str:
        """The family's lines, HELP and TYPE included."""
        kind = {REQUESTS: "counter", DURATION: "histogram", IN_PROGRESS: "gauge"}[family]
        name = REQUESTS + ("" if openmetrics else "_total") if family == REQUESTS else family
        parts = [f"# HELP {name} {_help(self.helps[family])}\n# TYPE {name} {kind}\n"]
        if family == IN_PROGRESS:
            parts.extend(f"{IN_PROGRESS}{{{r.labels}}} {r.in_progress}.0\n" for r in self.rows)
        else:
            render = self._requests if family == REQUESTS else self._duration
            slot = (0 if family == REQUESTS else 2) + (1 if openmetrics else 0)
            for row in self.rows:
                cached = row.series.rendered[slot]
                if cached is None or cached[0] != row.version:
                    cached = (row.version, render(row, openmetrics))
                    row.series.rendered[slot] = cached
                parts.append(cached[1])
        return "".join(parts)

    @staticmethod
    def _requests(row: Row, openmetrics: bool) -> str:
        return "".join(
            f'http_requests_total{{{row.labels},status="{status}"}} {count}.0\n'
            for status, count in row.statuses
        )

    def _duration(self, row: Row, openmetrics: bool) -> str:
        lines = []
        cumulative = 0
        prefix = f'{DURATION}_bucket{{{row.labels},le="'
        for le, count, exemplar in zip(self.le, row.counts, row.exemplars, strict=True):
            cumulative += count
            line = f'{prefix}{le}"}} {cumulative}.0'
            if openmetrics and exemplar is not None:
                trace_id, value, stamp = exemplar
                line += f' # {{trace_id="{escape_label(trace_id)}"}} {value!r} {stamp!r}'
            lines.append(line)
        lines.append(f"{DURATION}_count{{{row.labels}}} {cumulative}.0")
        lines.append(f"{DURATION}_sum{{{row.labels}}} {_number(row.sum)}")
        return "\n".join(lines) + "\n"

    def samples(self, family: str) -> list[Sample]:
        """The family's samples as prometheus-client builds them."""
        out: list[Sample] = []
        for row in self.rows:
            method, route = row.series.method, row.series.route
            base = {"method": method, "route": route}
            if family == IN_PROGRESS:
                out.append(Sample(IN_PROGRESS, base, float(row.in_progress)))
            elif family == REQUESTS:
                out.extend(
                    Sample("http_requests_total", {**base, "status": str(status)}, float(count))
                    for status, count in row.statuses
                )
            else:
                cumulative = 0
                for le, count, exemplar in zip(self.le, row.counts, row.exemplars, strict=True):
                    cumulative += count
                    ex = None
                    if exemplar is not None:
                        ex = Exemplar({"trace_id": exemplar[0]}, exemplar[1], exemplar[2])
                    out.append(
                        Sample(
                            f"{DURATION}_bucket", {**base, "le": le}, float(cumulative), None, ex
                        )
                    )
                out.append(Sample(f"{DURATION}_count", base, float(cumulative)))
                out.append(Sample(f"{DURATION}_sum", base, row.sum))
        return out


class HttpFamily(Metric):
    """A metric family whose text is rendered directly and whose samples are built lazily."""

    def __init__(self, family: str, kind: str, snapshot: Snapshot) -> None:
        self._family, self._snapshot = family, snapshot
        self._samples: list[Sample] | None = None
        super().__init__(family, snapshot.helps[family], kind)

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = self._snapshot.samples(self._family)
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._samples = value or None

    def render(self, openmetrics: bool) -> str:
        """The family in the classic text format, or in OpenMetrics (with exemplars)."""
        return self._snapshot.text(self._family, openmetrics)


def families(snapshot: Snapshot) -> list[Any]:
    """The three HTTP families of one snapshot."""
    return [
        HttpFamily(REQUESTS, "counter", snapshot),
        HttpFamily(DURATION, "histogram", snapshot),
        HttpFamily(IN_PROGRESS, "gauge", snapshot),
    ]
