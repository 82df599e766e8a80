"""Writes listing features to the online store in micro-batches, in Feast's Redis layout.

Feast's Python write path costs more than the rest of the agent (about 4,200 events/s
through it here), so the writer speaks the online store's own layout
(:mod:`homeloop.online_layout`) over one pipelined round trip to read the stored event
times and one to write: what Feast would write, byte for byte (the parity test checks),
and like Feast it never replaces a value with an older one. Writes are retried until
they succeed, because the batch's offsets are committed only after this returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from tenacity import AsyncRetrying, before_sleep_log, wait_exponential_jitter

from feature_repo.definitions import listing_features as listing_view
from homeloop import online_layout as layout
from homeloop.events import ListingEvent
from homeloop.features import listing_features
from homeloop.settings import Settings
from streams.metrics import FEATURE_BATCH_SIZE, FEATURE_WRITE_SECONDS

logger = logging.getLogger(__name__)

VIEW = listing_view.name
JOIN_KEY = "listing_id"
FEATURES = tuple(f.name for f in listing_view.features)


def latest_per_listing(events: Sequence[ListingEvent]) -> list[ListingEvent]:
    """Keep only each listing's newest event (by event time) from one batch."""
    latest: dict[str, ListingEvent] = {}
    for event in events:
        seen = latest.get(event.listing_id)
        if seen is None or event.event_time >= seen.event_time:
            latest[event.listing_id] = event
    return list(latest.values())


def feature_row(event: ListingEvent) -> dict[str, float | str | None]:
    """The listing view's values for one event, by the shared formulas."""
    row: dict[str, float | str | None] = dict(listing_features(event))
    row["complex_id"] = event.complex_id
    row["region_code"] = event.region_code
    return row


class OnlineFeatureWriter:
    """Puts listing feature batches into the online store (Redis, Feast's layout)."""

    def __init__(self, settings: Settings) -> None:
        self._project = settings.feast_project
        self._redis = aioredis.from_url(settings.require().redis_url)
        self._fields = {name: layout.field(VIEW, name) for name in FEATURES}
        self._ts_field = layout.timestamp_field(VIEW)

    async def write(self, events: Sequence[ListingEvent]) -> int:
        latest = latest_per_listing(events)
        if not latest:
            return 0
        started = time.perf_counter()
        async for attempt in AsyncRetrying(
            wait=wait_exponential_jitter(initial=0.1, max=5.0),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        ):
            with attempt:
                written = await self._write(latest)
        FEATURE_WRITE_SECONDS.observe(time.perf_counter() - started)
        FEATURE_BATCH_SIZE.observe(len(latest))
        return written

    async def _write(self, events: list[ListingEvent]) -> int:
        keys = [layout.entity_key(self._project, JOIN_KEY, e.listing_id) for e in events]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, self._ts_field)  # type: ignore[arg-type]  # bytes keys are valid
            stored = await pipe.execute()
        written = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, event, previous in zip(keys, events, stored, strict=True):
                new = layout.encode_time(event.event_time)
                if layout.decode_time_nanos(new) <= layout.decode_time_nanos(previous):
                    continue  # a replay or an older event: the stored value stands
                mapping: dict[bytes | str, bytes] = {self._ts_field: new}
                for name, value in feature_row(event).items():
                    mapping[self._fields[name]] = layout.encode(value)
                pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                written += 1
            await pipe.execute()
        return written

    async def close(self) -> None:
        await self._redis.aclose()
