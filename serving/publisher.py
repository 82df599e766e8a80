"""Publishes prediction events to Kafka without making requests wait.

Requests put events in a bounded buffer; a background task drains it in batches and
retries until the broker takes them, so a broker outage delays events, never the
response. When the buffer is full the event is counted as dropped (issue 6 spools it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from homeloop.events import PredictionEvent
from homeloop.settings import Settings
from homeloop.topics import message_key
from serving.metrics import PUBLISH_BUFFER, PUBLISH_DROPPED, PUBLISHED

logger = logging.getLogger(__name__)

BATCH = 500


class PredictionPublisher:
    def __init__(self, settings: Settings, buffer_size: int = 10_000) -> None:
        self._settings = settings
        self._topic = settings.topic("predictions")
        self._queue: asyncio.Queue[PredictionEvent] = asyncio.Queue(maxsize=buffer_size)
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = False

    def publish(self, event: PredictionEvent) -> None:
        """Hand an event to the background sender; never blocks the request."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            PUBLISH_DROPPED.inc()
            logger.error("prediction buffer full, dropped prediction_id=%s", event.prediction_id)
        PUBLISH_BUFFER.set(self._queue.qsize())

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="prediction-publisher")

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Send what is buffered (bounded by a timeout), then close the producer."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._producer is not None:
            await self._producer.stop()

    async def _connect(self) -> AIOKafkaProducer:
        delay = 0.2
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.require().kafka_bootstrap_servers,
                linger_ms=5,
                acks=1,
                enable_idempotence=False,
            )
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                logger.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.connected = True
            return producer

    async def _run(self) -> None:
        self._producer = await self._connect()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._send(batch)
            for _ in batch:
                self._queue.task_done()
            PUBLISH_BUFFER.set(self._queue.qsize())

    async def _send(self, batch: list[PredictionEvent]) -> None:
        assert self._producer is not None
        pending = batch
        delay = 0.2
        while pending:
            futures = [
                await self._producer.send(self._topic, e.to_bytes(), key=message_key(e))
                for e in pending
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = [e for e, r in zip(pending, results, strict=True) if isinstance(r, Exception)]
            PUBLISHED.inc(len(pending) - len(failed))
            self.connected = not failed
            if failed:
                logger.warning(
                    "%d prediction events not sent; retrying in %.1fs", len(failed), delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            pending = failed
