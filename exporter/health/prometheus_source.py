"""History points read from Prometheus: each signal's own PromQL, with the service's selector.

In the over-Prometheus mode the sidecar keeps no samples: each interval it runs, for every
signal of the catalogue, the flat expression the rules record (`Signal.promql`, the same window,
`EXPORTER_SERVICE_SELECTOR` in every selector), once for the service and once per instance, at
one evaluation time. At start it reads the last hour back with range queries, so the page has
its sparklines at once. A query that fails fails the point: the history keeps the last ones,
and the API says they are stale.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from exporter.health.engines import PrometheusQueries
from exporter.health.history import Point, split_instances
from exporter.signals import CATALOGUE, Catalogue, Labels


class PrometheusPoints:
    """Makes a history `Point` from Prometheus each time it is called."""

    def __init__(
        self, queries: PrometheusQueries, selector: str, window: str,
        catalogue: Catalogue = CATALOGUE, parallel: int = 8,
    ) -> None:
        self.queries, self.selector, self.window = queries, selector, window
        self._catalogue = catalogue
        self._pool = ThreadPoolExecutor(max_workers=parallel,
                                        thread_name_prefix="exporter-promql")

    def expressions(self) -> dict[tuple[str, bool], str]:
        """Every query of one point: (signal, per instance) -> PromQL."""
        return {
            (s.name, per_instance): s.promql(self.window, per_instance, self.selector)
            for s in self._catalogue for per_instance in (False, True)
        }

    def __call__(self) -> Point:
        """The point of now; `EngineError` when a query fails (the first failure's)."""
        at = time.time()
        expressions = self.expressions()
        futures = {key: self._pool.submit(self.queries.instant, expr, at)
                   for key, expr in expressions.items()}
        results = {key: future.result() for key, future in futures.items()}
        values = {s.name: results[(s.name, False)] for s in self._catalogue}
        each = {s.name: results[(s.name, True)] for s in self._catalogue}
        alerting = {s.name: each[s.name] if s.per_series else values[s.name]
                    for s in self._catalogue}
        return Point(at, values, alerting, split_instances(each))

    def backfill(self, seconds: float, step: float) -> list[Point]:
        """The service's values of the last `seconds`, every `step` (the overview only)."""
        end = time.time()
        start = end - seconds
        matrices = {
            s.name: self._pool.submit(
                self.queries.range, s.promql(self.window, False, self.selector), start, end, step)
            for s in self._catalogue
        }
        by_time: dict[float, dict[str, dict[Labels, float]]] = {}
        for name, future in matrices.items():
            for at, values in future.result().items():
                by_time.setdefault(at, {})[name] = values
        return [Point(at, values, values) for at, values in sorted(by_time.items())]

    def close(self) -> None:
        """Stop the query threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
