"""Publishing events from batch jobs and scripts: a short-lived producer, keyed per topic."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from homeloop.events import Event
from homeloop.settings import Settings
from homeloop.topics import message_key, topic_for


async def publish_async(settings: Settings, *events: Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.require().kafka_bootstrap_servers)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                settings.topic(topic_for(event)), event.to_bytes(), key=message_key(event)
            )
    finally:
        await producer.stop()


def publish(settings: Settings, *events: Event) -> None:
    """Send events and wait until the broker has them (for jobs outside an event loop)."""
    asyncio.run(publish_async(settings, *events))
