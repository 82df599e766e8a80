"""Sends refused messages to ``dead-letter`` with the reason, counted, before offsets move."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer, ConsumerRecord

from streams.decoding import Rejected, dead_letter
from streams.metrics import DEAD_LETTERS, EVENTS

logger = logging.getLogger(__name__)


class DeadLetters:
    """Dead letters for one consumer; :meth:`send` returns once the broker has them."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, consumer: str) -> None:
        self._producer = producer
        self._topic = topic
        self._consumer = consumer

    async def send(self, refused: list[tuple[ConsumerRecord[bytes, bytes], Rejected]]) -> None:
        if not refused:
            return
        futures = []
        for record, rejected in refused:
            letter = dead_letter(
                rejected=rejected,
                raw=record.value,
                key=record.key,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                consumer=self._consumer,
            )
            futures.append(
                await self._producer.send(
                    self._topic, key=record.topic.encode(), value=letter.to_bytes()
                )
            )
            DEAD_LETTERS.labels(topic=record.topic, reason=rejected.reason).inc()
            EVENTS.labels(topic=record.topic, outcome="dead_letter").inc()
            logger.warning(
                "dead-lettered topic=%s partition=%s offset=%s reason=%s",
                record.topic,
                record.partition,
                record.offset,
                letter.error,
            )
        await asyncio.gather(*futures)
