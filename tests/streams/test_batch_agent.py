"""The batch agent's offsets on the real broker: committed after the work, never past a failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from homeloop.settings import Settings
from streams.batch_agent import BatchAgent, Record

pytestmark = pytest.mark.integration


async def produce(settings: Settings, topic: str, values: Sequence[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.require().kafka_bootstrap_servers)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, partition=0)
        await producer.flush()
    finally:
        await producer.stop()


async def committed(settings: Settings, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.require().kafka_bootstrap_servers, group_id=group
    )
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def run_agent(settings: Settings, topic: str, group: str, handler: object) -> BatchAgent:
    agent = BatchAgent(
        settings,
        topic=topic,
        group_id=group,
        handler=handler,
        max_records=3,
        within_ms=5,
        max_in_flight=2,  # the batch after a failing one is under way when it fails
    )
    await agent.start()
    return agent


def test_offsets_are_committed_once_handled_and_never_past_a_failed_batch(
    settings: Settings,
) -> None:
    topic = settings.topic("listings")
    values = [f"v{i}".encode() for i in range(12)]

    async def scenario() -> tuple[list[bytes], int | None, list[bytes], int | None]:
        await produce(settings, topic, values)
        seen: list[bytes] = []
        failed = asyncio.Event()

        async def fails_at_v7(records: Sequence[Record]) -> None:
            if b"v7" in [r.value for r in records]:
                failed.set()
                raise RuntimeError("a bug in the handler")
            await asyncio.sleep(0.05)
            seen.extend(r.value for r in records)

        group = f"{settings.topic_prefix}batch-agent-test"
        agent = await run_agent(settings, topic, group, fails_at_v7)
        await asyncio.wait_for(failed.wait(), 30)
        await asyncio.sleep(0.5)  # the agent stops on the failure
        await agent.stop()
        after_failure = await committed(settings, group, topic)

        replayed: list[bytes] = []
        all_in = asyncio.Event()

        async def records(records: Sequence[Record]) -> None:
            replayed.extend(r.value for r in records)
            if values[-1] in replayed:
                all_in.set()

        agent = await run_agent(settings, topic, group, records)
        await asyncio.wait_for(all_in.wait(), 30)
        await asyncio.sleep(0.5)  # idle: what is done is committed without waiting to stop
        idle = await committed(settings, group, topic)
        await agent.stop()
        return seen, after_failure, replayed, idle

    seen, after_failure, replayed, idle = asyncio.run(scenario())
    assert b"v7" not in seen
    # Batches of at most 3: the ones before the failed batch are committed, and nothing
    # after it, though the batch after it was under way and finished.
    assert after_failure is not None and 0 < after_failure <= values.index(b"v7")
    assert set(values[:after_failure]) <= set(seen)
    assert replayed == values[after_failure:]  # the failed batch comes again, first
    assert idle == len(values)


def test_a_stop_finishes_and_commits_the_batches_under_way(settings: Settings) -> None:
    topic = settings.topic("listings")
    values = [f"v{i}".encode() for i in range(6)]

    async def scenario() -> tuple[list[bytes], int | None]:
        await produce(settings, topic, values)
        handled: list[bytes] = []
        started = asyncio.Event()

        async def slow(records: Sequence[Record]) -> None:
            started.set()
            await asyncio.sleep(0.3)
            handled.extend(r.value for r in records)

        group = f"{settings.topic_prefix}batch-agent-stop"
        agent = await run_agent(settings, topic, group, slow)
        await asyncio.wait_for(started.wait(), 30)
        await asyncio.wait_for(agent.stop(), 20)  # with batches under way
        return handled, await committed(settings, group, topic)

    handled, offset = asyncio.run(scenario())
    assert handled == values[: len(handled)] and handled  # in order, at least one batch
    assert offset == len(handled)  # what was under way finished and was committed
