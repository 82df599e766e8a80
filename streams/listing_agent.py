"""The listing agent: listing events → listing features, online and offline, per batch.

Per fetched batch: decode (bad ones to ``dead-letter``), compute the features of every
event with the shared vectorised formulas, then write the online store and the offline
log concurrently; the batch agent commits the offsets after both have returned.
Implausible or missing inputs leave the affected features missing and are counted by
reason, as are listings in a complex or region the market data does not know.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence

import redis.asyncio as aioredis

from homeloop.events import ListingEvent
from homeloop.features import dong_id, event_columns, listing_feature_columns
from homeloop.online_layout import known_key
from homeloop.settings import Settings
from streams.batch_agent import Record
from streams.dead_letters import DeadLetters
from streams.decoding import Decoded, Rejected, decode_many
from streams.metrics import (
    EVENTS,
    FEATURE_BATCH_SIZE,
    FEATURE_QUALITY,
    FEATURE_WRITE_SECONDS,
    observe_freshness,
)
from streams.offline_log import OfflineLog
from streams.online_writer import ListingRows, ListingWriter

logger = logging.getLogger(__name__)

KNOWN_REFRESH_S = 60.0


def listing_rows(events: Sequence[ListingEvent]) -> tuple[ListingRows, dict[str, int]]:
    """Feature rows for events, and how many rows each quality reason affected."""
    columns, at = event_columns(events)
    features, flags = listing_feature_columns(columns, at)
    rows = ListingRows(
        event_ids=[e.event_id for e in events],
        listing_ids=[e.listing_id for e in events],
        event_times=list(at),
        features=features,
        keys={
            "complex_id": [e.complex_id for e in events],
            "dong_id": [dong_id(e.region_code, e.dong) for e in events],
            "region_code": [e.region_code for e in events],
        },
    )
    return rows, {reason: int(mask.sum()) for reason, mask in flags.items() if mask.any()}


class ListingAgent:
    """The handler a :class:`~streams.batch_agent.BatchAgent` calls for ``listings``."""

    name = "listing-features"
    # Two batches' online writes may overlap, and offline appends overlap later batches:
    # the compare-and-set on event time and the log's keys make the order irrelevant.
    max_in_flight = 2

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        offline: OfflineLog,
        dead_letters: DeadLetters,
    ) -> None:
        self.topic = settings.topic("listings")
        self._project = settings.feast_project
        self._redis = redis
        self._online = ListingWriter(redis, settings.feast_project)
        self._offline = offline
        self._dead_letters = dead_letters
        self._known: dict[str, set[str]] = {}
        self._known_at = -KNOWN_REFRESH_S

    async def __call__(self, records: Sequence[Record]) -> Awaitable[None] | None:
        """Writes the batch online; returns the offline append, which the batch agent
        awaits before committing the offsets (it need not hold up the next batch)."""
        decoded = decode_many([r.value for r in records], ListingEvent)
        events = [d.event for d in decoded if isinstance(d, Decoded)]
        await self._dead_letters.send(
            [(r, d) for r, d in zip(records, decoded, strict=True) if isinstance(d, Rejected)]
        )
        if not events:
            return None
        rows, quality = listing_rows(events)
        await self._count_unknown(rows, quality)
        started = time.perf_counter()
        offline = asyncio.ensure_future(self._offline.append_listings(rows))
        try:
            await self._online.write(rows)
        except BaseException:
            offline.cancel()
            raise
        FEATURE_WRITE_SECONDS.observe(time.perf_counter() - started)
        observe_freshness("listing_features", records)  # readable online from here on
        FEATURE_BATCH_SIZE.observe(len(events))
        for reason, count in quality.items():
            FEATURE_QUALITY.labels(view="listing_features", reason=reason).inc(count)
        EVENTS.labels(topic=self.topic, outcome="ok").inc(len(events))
        return offline

    async def _count_unknown(self, rows: ListingRows, quality: dict[str, int]) -> None:
        """Counts listings whose complex or region has no market figures (yet)."""
        now = time.monotonic()
        if now - self._known_at >= KNOWN_REFRESH_S:
            self._known_at = now
            for join_key in ("complex_id", "region_code"):
                members = await self._redis.smembers(known_key(self._project, join_key))  # type: ignore[misc]
                self._known[join_key] = {m.decode() for m in members}
        for join_key, reason in (
            ("complex_id", "unknown_complex"),
            ("region_code", "unknown_region"),
        ):
            known = self._known.get(join_key)
            if known:  # before the first market run nothing is known, and nothing is counted
                unknown = sum(1 for value in rows.keys[join_key] if value not in known)
                if unknown:
                    quality[reason] = unknown
