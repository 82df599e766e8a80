"""The engagement agent: clicks and inquiries → sliding-window counts per listing.

Windows are 1 h, 24 h and 7 d of event time (``homeloop.engagement``), kept in Redis
sorted sets keyed by ``event_id`` (a replayed event is the same member: counted once),
counted as of the listing's newest event. Windows also slide without new events: a
sweep, every ``SWEEP_EVERY_S``, recounts the listings whose oldest counted event has
left a window by the stream's watermark (the newest event time seen), so a count goes
down when it should instead of waiting for the next click. Each recount is written to
the online store and appended to the offline log with its as-of time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import redis.asyncio as aioredis

from homeloop.engagement import KINDS
from homeloop.events import UserEvent
from homeloop.settings import Settings
from streams.batch_agent import Record
from streams.dead_letters import DeadLetters
from streams.decoding import Decoded, Rejected, decode_many
from streams.metrics import ENGAGEMENT_RECOUNTS, EVENTS, observe_freshness
from streams.offline_log import OfflineLog
from streams.online_writer import EngagementRows, EngagementWriter

logger = logging.getLogger(__name__)

SWEEP_EVERY_S = 1.0


def watermark_key(project: str) -> str:
    return f"homeloop:{project}:engagement-watermark"


class EngagementAgent:
    """The handler a :class:`~streams.batch_agent.BatchAgent` calls for ``user-events``."""

    name = "engagement-features"
    max_in_flight = 1  # recount and publish are two round trips: batches go one at a time

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        offline: OfflineLog,
        dead_letters: DeadLetters,
    ) -> None:
        self.topic = settings.topic("user-events")
        self._redis = redis
        self._watermark_key = watermark_key(settings.feast_project)
        self.writer = EngagementWriter(redis, settings.feast_project)
        self._offline = offline
        self._dead_letters = dead_letters
        self.watermark: datetime | None = None
        self._lock = asyncio.Lock()  # a sweep and a batch never recount at the same time

    async def __call__(self, records: Sequence[Record]) -> None:
        decoded = decode_many([r.value for r in records], UserEvent)
        await self._dead_letters.send(
            [(r, d) for r, d in zip(records, decoded, strict=True) if isinstance(d, Rejected)]
        )
        by_listing: dict[str, list[tuple[str, str, datetime]]] = defaultdict(list)
        by_type: dict[str, int] = defaultdict(int)
        newest: datetime | None = None
        for item in decoded:
            if not isinstance(item, Decoded):
                continue
            event = item.event
            newest = event.event_time if newest is None else max(newest, event.event_time)
            by_type[event.type] += 1
            if event.type in KINDS:
                by_listing[event.listing_id].append(
                    (event.type, str(event.event_id), event.event_time)
                )
        if by_listing:
            async with self._lock:
                rows = await self.writer.add(by_listing)
                await self._offline.append_engagement(rows)
            ENGAGEMENT_RECOUNTS.labels(cause="event").inc(len(rows.listing_ids))
        if newest is not None:
            await self._advance(newest)
        for kind, count in by_type.items():  # contracts are counted; outcomes use them later
            EVENTS.labels(topic=self.topic, outcome=kind).inc(count)
        observe_freshness("engagement_features", records)

    async def _advance(self, newest: datetime) -> None:
        if self.watermark is None:
            stored = await self._redis.get(self._watermark_key)
            self.watermark = datetime.fromisoformat(stored.decode()) if stored else newest
        if newest > self.watermark:
            self.watermark = newest
            await self._redis.set(self._watermark_key, newest.isoformat())

    async def sweep(self) -> EngagementRows | None:
        """Recount listings whose windows slid by the watermark; returns what was rewritten."""
        if self.watermark is None:
            return None
        async with self._lock:
            rows = await self.writer.sweep(self.watermark)
            await self._offline.append_engagement(rows)
        if rows.listing_ids:
            ENGAGEMENT_RECOUNTS.labels(cause="window").inc(len(rows.listing_ids))
        return rows
