"""Reading what landed on a topic, for tests that check what a component published."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer

from homeloop.settings import Settings


async def read_topic_async(
    settings: Settings, topic: str, want: int | None = None, timeout: float = 5.0
) -> list[bytes]:
    """Values of ``topic`` (design name) from the start: ``want`` of them, or all within ``timeout``."""
    consumer = AIOKafkaConsumer(
        settings.topic(topic),
        bootstrap_servers=settings.require().kafka_bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while (want is None or len(values) < want) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            values += [bytes(r.value or b"") for rs in batches.values() for r in rs]
    finally:
        await consumer.stop()
    return values


def read_topic(
    settings: Settings, topic: str, want: int | None = None, timeout: float = 5.0
) -> list[bytes]:
    return asyncio.run(read_topic_async(settings, topic, want, timeout))
