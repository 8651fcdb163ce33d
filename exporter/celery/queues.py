"""The Celery app's queues as queue-depth targets, read by the health probes' queue readers.

The user lists queues once, in Celery (`task_queues`, else `task_default_queue`): the broker
URL and those names become the same `Queue` targets `EXPORTER_QUEUES` produces.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlsplit

from exporter.config.dependencies import Queue, parse_queue, redact_url

log = logging.getLogger("exporter.celery")

# Celery transport aliases -> the scheme of the probes' queue URLs.
_SCHEMES = {
    "redis": "redis", "rediss": "rediss", "amqp": "amqp", "pyamqp": "amqp", "amqps": "amqps",
}


def queue_names(app: Any) -> list[str]:
    """The queue names the app declares: `task_queues`, else the default queue."""
    conf = app.conf
    declared = conf.task_queues
    names: list[str] = []
    if declared:
        items = declared.values() if isinstance(declared, dict) else declared
        for queue in items:
            name = getattr(queue, "name", queue)
            if isinstance(name, str) and name and name not in names:
                names.append(name)
    if not names:
        names.append(str(conf.task_default_queue or "celery"))
    return names


def queue_url(broker_url: str, queue: str) -> str | None:
    """The probes' URL of `queue` on `broker_url`, or None for a transport they cannot read."""
    parts = urlsplit(broker_url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        return None
    name = quote(queue, safe="")
    if scheme.startswith("redis"):
        db = parts.path.strip("/") or "0"
        return parts._replace(scheme=scheme, path=f"/{db}/{name}", query="").geturl()
    # Celery writes the default vhost as `//` (or nothing); the probes want it %2F-quoted.
    vhost = parts.path[1:] if parts.path.startswith("/") else parts.path
    vhost = vhost or "/"
    return parts._replace(scheme=scheme, path=f"/{quote(vhost, safe='')}/{name}").geturl()


def celery_queues(app: Any, names: list[str] | None = None) -> list[Queue]:
    """Depth targets for the app's queues (or `names`) on its broker; [] when unreadable."""
    broker = app.conf.broker_url or "amqp://guest:guest@localhost:5672//"
    # Several brokers (failover) are separated by ';': the first is the one in use.
    broker = str(broker).split(";")[0].strip()
    targets: list[Queue] = []
    for name in names or queue_names(app):
        url = queue_url(broker, name)
        if url is None:
            log.warning("celery queue depth: transport of %s is not supported (redis, amqp)",
                        redact_url(broker))
            return []
        try:
            targets.append(parse_queue(url))
        except ValueError as exc:
            log.warning("celery queue depth: queue %r skipped: %s", name, exc)
    return targets
