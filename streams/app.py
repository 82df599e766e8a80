"""The faust-streaming app: topics and agents, built from settings by a factory.

A factory rather than a module-level app, so importing this module connects to nothing
and tests can build apps with their own topic prefix.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import EventT, StreamT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from homeloop.events import Event, ListingEvent, UserEvent
from homeloop.settings import Settings
from homeloop.topics import BY_NAME
from streams.decoding import Decoded, dead_letter, decode
from streams.metrics import DEAD_LETTERS, EVENTS
from streams.online_writer import OnlineFeatureWriter

logger = logging.getLogger(__name__)

# Micro-batches: at most this many events, or whatever arrived within this many seconds.
BATCH_MAX = 1000
BATCH_WITHIN_S = 0.02


def create_app(settings: Settings) -> faust.App:
    services = settings.require()
    data_dir = (settings.data_dir / "faust").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.topic_prefix}homeloop-streams",
        broker=f"kafka://{services.kafka_bootstrap_servers}",
        store="memory://",
        datadir=str(data_dir),
        broker_rebalance_timeout=settings.worker_rebalance_timeout,
        broker_session_timeout=settings.worker_session_timeout,
        broker_heartbeat_interval=settings.worker_session_timeout / 3,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.worker_web_bind,
        web_host=settings.worker_web_bind,
        web_port=settings.worker_web_port,
        topic_allow_declare=True,
        topic_disable_leader=True,
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            settings.topic(name),
            key_serializer="raw",
            value_serializer="raw",
            partitions=BY_NAME[name].partitions,
        )

    listings = raw_topic("listings")
    user_events = raw_topic("user-events")
    dead_letters = raw_topic("dead-letter")
    writer = OnlineFeatureWriter(settings)

    async def decode_or_dead_letter(event: EventT, model: type[Event], consumer: str) -> Any:
        """The decoded event, or ``None`` after sending the message to ``dead-letter``."""
        message = event.message
        result = decode(event.value, model)
        if isinstance(result, Decoded):
            return result.event
        letter = dead_letter(
            rejected=result,
            raw=event.value,
            key=event.key,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            consumer=consumer,
        )
        await dead_letters.send(key=message.topic.encode(), value=letter.to_bytes())
        DEAD_LETTERS.labels(topic=message.topic, reason=result.reason).inc()
        EVENTS.labels(topic=message.topic, outcome="dead_letter").inc()
        logger.warning(
            "dead-lettered topic=%s partition=%s offset=%s reason=%s",
            message.topic,
            message.partition,
            message.offset,
            letter.error,
        )
        return None

    @app.agent(listings, name="listing-features")
    async def listing_features(stream: StreamT) -> None:
        """Listing events → listing features in the online store, micro-batched."""
        # take_events acks a batch's offsets only after the loop body has run for it
        # (faust-streaming has it; its StreamT stub does not).
        batches = stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S)  # type: ignore[attr-defined]
        async for batch in batches:
            good: list[ListingEvent] = []
            for event in batch:
                decoded = await decode_or_dead_letter(event, ListingEvent, "listing-features")
                if decoded is not None:
                    good.append(decoded)
            if good:
                # Offsets of this batch are acked only after the write returns.
                await writer.write(good)
                EVENTS.labels(topic=settings.topic("listings"), outcome="ok").inc(len(good))

    @app.agent(user_events, name="user-events")
    async def count_user_events(stream: StreamT) -> None:
        """Clicks, inquiries and contracts: validated and counted (outcomes come later)."""
        async for event in stream.events():
            decoded = await decode_or_dead_letter(event, UserEvent, "user-events")
            if decoded is not None:
                EVENTS.labels(topic=settings.topic("user-events"), outcome=decoded.type).inc()

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp wants the charset apart from the media type.
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "app": app.conf.id})

    return app
