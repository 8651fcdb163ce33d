"""`exporter check --probe`: each configured endpoint tried once, with why it does not answer."""

from __future__ import annotations

import asyncio

import httpx

from exporter.config import Settings
from exporter.config.dependencies import parse_dependency, parse_queues
from exporter.config.targets import parse_targets
from exporter.health.probes.runner import ProbeRunner
from exporter.health.scrape import Scraper

Result = tuple[str, bool, str]  # (what, answered, "ok" or why not)


def _http(what: str, url: str, timeout: float, headers: dict[str, str] | None = None) -> Result:
    try:
        reply = httpx.get(url, timeout=timeout, headers=headers)
    except httpx.TimeoutException:
        return what, False, f"timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        text = " ".join(str(exc).split())[:160] or type(exc).__name__
        return what, False, "connection refused" if "refused" in text.lower() else text
    if reply.status_code != 200:
        return what, False, f"HTTP {reply.status_code} from {url}"
    return what, True, "ok"


def probe_all(settings: Settings) -> list[Result]:
    """Every dependency, queue, target, Loki, Prometheus and Alertmanager, tried once."""
    timeout = settings.probe_timeout_seconds
    runner = ProbeRunner([parse_dependency(n, u) for n, u in settings.dependencies.items()],
                         parse_queues(settings.queues), timeout=timeout)
    asyncio.run(runner.run_round())
    results: list[Result] = []
    for dep in runner.dependencies:
        result = runner.dependency_results()[dep.name]
        results.append((f"dependency {dep.name} ({dep.kind}, {dep.safe_url})", result.up,
                        result.reason))
    for queue in runner.queues:
        reading = runner.queue_results()[(queue.backend, queue.queue)]
        results.append((f"queue {queue.backend}/{queue.queue}", reading.ok, reading.reason))
    scraper = Scraper(settings.scrape_timeout_seconds)
    try:
        for target in parse_targets(settings.targets):
            scrape = scraper.scrape(target, frozenset())
            results.append((f"target {target.url}", scrape.up, scrape.reason))
    finally:
        scraper.close()
    if settings.loki_url:
        results.append(_http("loki", settings.loki_url.rstrip("/") + "/ready", timeout))
    if settings.prometheus_url:
        results.append(_http("prometheus", settings.prometheus_url + "/api/v1/status/buildinfo",
                             timeout))
    if settings.alertmanager_url:
        results.append(_http("alertmanager", settings.alertmanager_url + "/api/v2/status",
                             timeout))
    return results
