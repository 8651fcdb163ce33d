"""Scraping the apps the sidecar watches: each target's `/metrics`, with a timeout, in parallel.

Each history interval the sampler asks every target at once (a thread each, at most 16 at a
time) and parses only the samples the signals read: a 2,000-series app yields a few hundred.
A target that is down, slow or answers something else is reported with the reason, and the
others still count. Nothing here runs on the event loop: the API never waits for a scrape.
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from exporter.config.targets import Target

# The classic text only: every client library serves it, and it carries all we read (not the
# exemplars, which OpenMetrics adds after the value).
ACCEPT = "text/plain;version=0.0.4"
_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?[ \t]+(\S+)')
Sample = tuple[str, str, float]  # (series as written, name, value)
_CHECKED_LINES = 20


class NotPrometheusText(ValueError):
    """The body is not the Prometheus text format (an HTML page, JSON...)."""


def parse_samples(text: str, wanted: frozenset[str]) -> tuple[list[Sample], int]:
    """(the samples whose name is in `wanted`, how many sample lines there were); a sample is
    (its series as written, `name{labels}`, the name, the value): the labels are parsed by the
    reducer once per series, not here on every scrape.

    `NotPrometheusText` when one of the first lines, or a line read, is neither a comment nor
    a sample.
    """
    found: list[Sample] = []
    lines = 0
    for line in text.splitlines():
        if not line or line[0] == "#" or line.isspace():
            continue
        brace, space = line.find("{"), line.find(" ")
        labelled = brace != -1 and (space == -1 or brace < space)
        name = line[:brace] if labelled else line[:space] if space != -1 else line
        lines += 1
        read = name in wanted
        # Lines not read are only checked at the top: an HTML page fails there, and checking
        # all of a large exposition would cost more than the lines read.
        if not read and lines > _CHECKED_LINES:
            continue
        if lines <= _CHECKED_LINES and _SAMPLE.match(line) is None:
            raise NotPrometheusText(f"not Prometheus text: {line.strip()[:60]!r}")
        if not read:
            continue
        if " # " in line:  # an OpenMetrics exemplar after the value: `... 3.0 # {trace_id=..}`
            match = _SAMPLE.match(line)
            if match is None:
                raise NotPrometheusText(f"not Prometheus text: {line.strip()[:60]!r}")
            end = match.end(2) if labelled else len(name)
        else:
            end = line.rfind("}") + 1 if labelled else len(name)  # a value holds no brace
        try:
            value = float(line[end:].split(None, 1)[0])
        except (ValueError, IndexError):
            raise NotPrometheusText(f"not Prometheus text: {line.strip()[:60]!r}") from None
        found.append((line[:end], name, value))
    return found, lines


@dataclass(frozen=True)
class Scrape:
    """One target's last scrape: up or not (with why), how long it took, what it served."""

    target: Target
    up: bool
    reason: str  # "ok", or why not
    seconds: float
    checked_at: float  # wall-clock time of the scrape
    series: int = 0
    samples: list[Sample] = field(default_factory=list, repr=False)


def _why(exc: Exception, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        cause = exc.__cause__ or exc.__context__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if (isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED) or (
                "refused" in str(exc).lower()):
            return "connection refused"
        return f"cannot connect: {' '.join(str(exc).split())[:120] or type(exc).__name__}"
    if isinstance(exc, NotPrometheusText):
        return str(exc)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"


class Scraper:
    """Scrapes targets in parallel threads with one shared HTTP client."""

    def __init__(self, timeout: float = 2.0, parallel: int = 16) -> None:
        self.timeout = timeout
        self._client = httpx.Client(timeout=timeout, headers={"Accept": ACCEPT},
                                    follow_redirects=False)
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="exporter-scrape")

    def scrape(self, target: Target, wanted: frozenset[str]) -> Scrape:
        """One target, now; never raises."""
        start = time.perf_counter()
        wall = time.time()
        try:
            reply = self._client.get(target.url)
            if reply.status_code != 200:
                raise NotPrometheusText(f"HTTP {reply.status_code} from {target.url}")
            kind = reply.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind in ("text/html", "application/json", "application/xml"):
                raise NotPrometheusText(f"not Prometheus text: the answer is {kind}")
            samples, series = parse_samples(reply.text, wanted)
        except Exception as exc:  # a target must never take the sampler down
            return Scrape(target, False, _why(exc, self.timeout), time.perf_counter() - start,
                          wall)
        return Scrape(target, True, "ok", time.perf_counter() - start, wall, series, samples)

    def scrape_all(self, targets: Iterable[Target], wanted: frozenset[str]) -> list[Scrape]:
        """Every target at once; the results in the targets' order."""
        futures = [self._pool.submit(self.scrape, t, wanted) for t in targets]
        return [f.result() for f in futures]

    def close(self) -> None:
        """Stop the threads and the client."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


def by_instance(scrapes: Iterable[Scrape]) -> Mapping[str, Scrape]:
    """Scrapes by the target's instance."""
    return {s.target.instance: s for s in scrapes}
