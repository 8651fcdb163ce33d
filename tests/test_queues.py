"""Queue depth against the real Redis and RabbitMQ: lists, Celery priorities, streams, AMQP."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry

from exporter.config.dependencies import parse_queue
from exporter.health.probes.queues import CELERY_PRIORITY_SEP
from exporter.health.probes.results import QueueReading
from exporter.health.probes.runner import ProbeRunner
from exporter.health.queue_collector import QueueCollector
from tests.conftest import require_tcp

REDIS = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


def read(url: str) -> QueueReading:
    runner = ProbeRunner([], [parse_queue(url)], timeout=3.0)
    return asyncio.run(runner.read(runner.queues[0]))


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    require_tcp("127.0.0.1", 6379, "Redis")
    conn = redis.Redis()
    keys: list[str] = []
    conn.keys_to_delete = keys  # type: ignore[attr-defined]
    yield conn
    if keys:
        conn.delete(*keys)
    conn.close()


def name(client: redis.Redis, prefix: str) -> str:
    key = f"{prefix}-{uuid.uuid4().hex[:10]}"
    client.keys_to_delete.append(key)  # type: ignore[attr-defined]
    return key


def test_redis_list_depth(client: redis.Redis) -> None:
    queue = name(client, "list")
    client.rpush(queue, *range(7))
    reading = read(f"{REDIS}/{queue}")
    assert (reading.ok, reading.exists, reading.depth, reading.structure) == (True, True, 7, "list")


def test_celery_priority_sub_queues_are_summed(client: redis.Redis) -> None:
    queue = name(client, "celery")
    subs = {3: 2, 6: 4, 9: 1}
    client.rpush(queue, "a", "b", "c")  # priority 0 lives in the bare key
    for priority, count in subs.items():
        key = f"{queue}{CELERY_PRIORITY_SEP}{priority}"
        client.keys_to_delete.append(key)  # type: ignore[attr-defined]
        client.rpush(key, *range(count))
    assert read(f"{REDIS}/{queue}").depth == 3 + 2 + 4 + 1


def test_celery_queue_with_only_priority_items_exists(client: redis.Redis) -> None:
    queue = name(client, "celery")
    key = f"{queue}{CELERY_PRIORITY_SEP}6"
    client.keys_to_delete.append(key)  # type: ignore[attr-defined]
    client.rpush(key, "x", "y")
    reading = read(f"{REDIS}/{queue}")
    assert (reading.exists, reading.depth) == (True, 2)


def test_absent_redis_key_reads_zero_and_is_flagged(client: redis.Redis) -> None:
    reading = read(f"{REDIS}/{name(client, 'nothing')}")
    assert (reading.ok, reading.exists, reading.depth) == (True, False, 0)
    assert "absent" in reading.reason


def test_stream_length_and_pending_per_group(client: redis.Redis) -> None:
    stream = name(client, "stream")
    for i in range(5):
        client.xadd(stream, {"n": i})
    client.xgroup_create(stream, "workers", id="0")
    client.xgroup_create(stream, "audit", id="0")
    client.xreadgroup("workers", "w1", {stream: ">"}, count=3)
    client.xreadgroup("audit", "a1", {stream: ">"}, count=1)
    reading = read(f"{REDIS}/{stream}")
    assert (reading.structure, reading.depth) == ("stream", 5)
    assert reading.pending == {"workers": 3, "audit": 1}
    assert reading.consumers == 2


def test_collector_labels(client: redis.Redis) -> None:
    stream = name(client, "stream")
    client.xadd(stream, {"n": 1})
    client.xgroup_create(stream, "g", id="0")
    client.xreadgroup("g", "c", {stream: ">"})
    registry = CollectorRegistry()
    runner = ProbeRunner([], [parse_queue(f"{REDIS}/{stream}")])
    QueueCollector(runner, registry)
    asyncio.run(runner.run_round())
    labels = {"backend": "redis", "queue": stream}
    assert registry.get_sample_value("queue_depth", labels) == 1.0
    assert registry.get_sample_value("queue_pending", {**labels, "group": "g"}) == 1.0
    assert registry.get_sample_value("queue_exists", labels) == 1.0
    assert registry.get_sample_value("queue_up", labels) == 1.0


@pytest.fixture
def rabbit_queue() -> Iterator[str]:
    require_tcp("127.0.0.1", 5672, "RabbitMQ")
    import aio_pika

    queue = f"exporter-test-{uuid.uuid4().hex[:10]}"

    async def run(publish: int) -> None:
        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            if publish:
                declared = await channel.declare_queue(queue, auto_delete=False)
                for i in range(publish):
                    await channel.default_exchange.publish(
                        aio_pika.Message(str(i).encode()), routing_key=queue
                    )
                assert declared.name == queue
            else:
                await channel.queue_delete(queue)

    asyncio.run(run(4))
    yield queue
    asyncio.run(run(0))


def test_rabbitmq_ready_messages_and_consumers(rabbit_queue: str) -> None:
    reading = read(f"{AMQP}/{rabbit_queue}")
    assert (reading.ok, reading.exists, reading.depth, reading.consumers) == (True, True, 4, 0)


def test_missing_rabbitmq_queue_reads_zero_and_is_flagged() -> None:
    require_tcp("127.0.0.1", 5672, "RabbitMQ")
    reading = read(f"{AMQP}/missing-{uuid.uuid4().hex[:10]}")
    assert (reading.ok, reading.exists, reading.depth) == (True, False, 0)
    assert "does not exist" in reading.reason


def test_rabbitmq_wrong_password_reads_down_without_it() -> None:
    require_tcp("127.0.0.1", 5672, "RabbitMQ")
    wrong = "Wr0ng-" + uuid.uuid4().hex[:8]
    reading = read(f"amqp://guest:{wrong}@127.0.0.1:5672/%2F/anything")
    assert not reading.ok
    assert wrong not in reading.reason and reading.reason


def test_rabbitmq_vhost_that_does_not_exist_gives_a_plain_reason() -> None:
    require_tcp("127.0.0.1", 5672, "RabbitMQ")
    vhost = f"missing-{uuid.uuid4().hex[:8]}"
    reading = read(f"amqp://guest:guest@127.0.0.1:5672/{vhost}/anything")
    assert not reading.ok
    assert f"vhost {vhost!r}" in reading.reason and "does not exist" in reading.reason
    assert " at 0x" not in reading.reason


def test_an_unreadable_queue_is_logged_once_and_its_recovery_too(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.probes")
    queue = name(client, "auth")
    user = f"queue-{uuid.uuid4().hex[:8]}"  # does not exist yet: the reads fail
    runner = ProbeRunner([], [parse_queue(f"redis://{user}:q-pw@127.0.0.1:6379/0/{queue}")])
    try:
        for _ in range(3):
            asyncio.run(runner.run_round())
        assert caplog.text.count(f"queue {queue} (redis) unreadable") == 1
        client.acl_setuser(user, enabled=True, passwords=["+q-pw"], commands=["+@all"],
                           keys=["*"])
        asyncio.run(runner.run_round())
    finally:
        client.acl_deluser(user)
    assert runner.queue_results()[("redis", queue)].ok
    assert f"queue {queue} (redis) is readable again" in caplog.text
