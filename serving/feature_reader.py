"""A listing's features for a request, through the one-round-trip online reader."""

from __future__ import annotations

import redis.asyncio as aioredis

from homeloop.features import FeatureRow
from homeloop.online_reader import OnlineReader
from homeloop.settings import Settings


class FeatureReader:
    """Online features by listing id; ``None`` when the store has never seen the listing."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self._reader = OnlineReader(redis, settings.feast_project)

    async def read(self, listing_id: str) -> FeatureRow | None:
        features = await self._reader.read([listing_id])
        return features.row(0) if features.found[0] else None
