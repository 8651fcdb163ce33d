"""Queue depth: Redis lists (with Celery's priority sub-queues), Redis streams, RabbitMQ queues."""

from __future__ import annotations

import time
from typing import Any

from exporter.config.dependencies import Queue
from exporter.health.probes.results import QueueReading

# Celery (kombu) on a Redis broker keeps priority N > 0 of queue Q in the list Q + SEP + N;
# priorities run 0..9 at most, so these nine keys cover every configuration of priority_steps.
CELERY_PRIORITY_SEP = "\x06\x16"
CELERY_PRIORITIES = range(1, 10)


class VhostRefused(ConnectionError):
    """RabbitMQ refused the vhost of a queue URL."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def read_redis_queue(queue: Queue, timeout: float) -> QueueReading:
    """LLEN of the list and its priority sub-queues, or XLEN and group pending for a stream."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(
        queue.url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
    )
    try:
        structure = _text(await client.type(queue.queue))
        if structure == "stream":
            depth = int(await client.xlen(queue.queue))
            groups = await client.xinfo_groups(queue.queue)
            pending = {_text(g["name"]): int(g["pending"]) for g in groups}
            consumers = sum(int(g["consumers"]) for g in groups)
            return QueueReading(
                True, True, depth, consumers, pending, "stream", "ok", time.time()
            )
        if structure not in ("list", "none"):
            return QueueReading(
                True, True, 0, None, {}, structure,
                f"key holds a {structure}, not a list or stream", time.time(),
            )
        async with client.pipeline(transaction=False) as pipe:
            pipe.llen(queue.queue)
            for priority in CELERY_PRIORITIES:
                pipe.llen(f"{queue.queue}{CELERY_PRIORITY_SEP}{priority}")
            lengths = [int(n) for n in await pipe.execute()]
    finally:
        await client.aclose()
    depth = sum(lengths)
    if depth == 0 and structure == "none":
        # Redis deletes empty lists: an absent key is an empty queue or a wrong name.
        return QueueReading(
            True, False, 0, None, {}, "none",
            "key absent: the queue is empty or its name is wrong", time.time(),
        )
    return QueueReading(True, True, depth, None, {}, "list", "ok", time.time())


async def read_rabbitmq_queue(queue: Queue, timeout: float) -> QueueReading:
    """Ready messages and consumers from a passive declare (unacknowledged ones not included)."""
    try:
        import aio_pika
        from aio_pika.exceptions import ChannelNotFoundEntity
        from aiormq.exceptions import InvalidFrameError
    except ImportError:
        from exporter.health.probes.dependencies import DriverMissing

        raise DriverMissing("pip install 'exporter[rabbitmq]' (aio-pika)") from None
    try:
        connection = await aio_pika.connect(queue.url, timeout=timeout)
    except InvalidFrameError as exc:
        # RabbitMQ answers Connection.Close (530) to an unknown or forbidden vhost; aiormq keeps
        # only the frame's repr, so the broker's own text is lost: say what it means instead.
        if "Connection.Close" not in str(exc):
            raise
        raise VhostRefused(
            f"the broker closed the connection on opening vhost {queue.vhost!r}: it does not "
            "exist, or the user may not use it"
        ) from None
    try:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue.queue, passive=True)
        except ChannelNotFoundEntity:
            return QueueReading(
                True, False, 0, 0, {}, "none", "queue does not exist on the broker", time.time()
            )
        result = declared.declaration_result
        return QueueReading(
            True, True, int(result.message_count or 0), int(result.consumer_count or 0), {},
            "queue", "ok", time.time(),
        )
    finally:
        await connection.close()


async def read_queue(queue: Queue, timeout: float) -> QueueReading:
    """The reading for `queue`, by backend."""
    if queue.backend == "redis":
        return await read_redis_queue(queue, timeout)
    return await read_rabbitmq_queue(queue, timeout)
