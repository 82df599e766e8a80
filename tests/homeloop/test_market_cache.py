"""The reader's remembered market figures: forgotten when the market job's version moves or
when they are too old, never used for a market they do not hold (unit), and against the
real Redis, a changed market is read once the market job says so and not before."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import numpy as np
import pytest
import redis.asyncio as aioredis

from homeloop import online_layout as layout
from homeloop.features import LISTING_FEATURES, MODEL_FEATURES
from homeloop.featurestore import MARKET_VIEWS
from homeloop.online_reader import MarketCache, OnlineReader
from homeloop.price_levels import LEVEL_FEATURES
from homeloop.redis_wire import WireConnection
from homeloop.settings import Settings
from streams.online_writer import ListingRows, ListingWriter

WIDTH = 9 * len(LEVEL_FEATURES)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_forgets_on_a_new_version_and_with_age() -> None:
    clock = Clock()
    cache = MarketCache(max_age_s=60.0, clock=clock)
    a, b = b"market-a", b"market-b"
    cache.check(b"1")
    assert cache.missing([a, None, b, a]) == [a, b]  # each once, no key for None
    cache.put([a, b], b"A" * WIDTH + b"B" * WIDTH)
    assert cache.missing([a, b]) == []
    assert cache.rows(b"own1own2", [a, None, b, b, a, None], 4) == (
        b"own1" + b"A" * WIDTH + bytes(WIDTH) + b"B" * WIDTH
    ) + (b"own2" + b"B" * WIDTH + b"A" * WIDTH + bytes(WIDTH))

    clock.now = 59.0
    cache.check(b"1")  # same version, young enough: kept
    assert cache.missing([a, b]) == []
    cache.check(b"2")  # the market job ran
    assert cache.missing([a, b]) == [a, b]

    cache.put([a], b"A" * WIDTH)
    clock.now = 59.0 + 60.5
    cache.check(b"2")  # too old, whatever the version says
    assert cache.missing([a]) == [a]


def test_a_cache_without_a_version_in_redis_still_ages() -> None:
    clock = Clock()
    cache = MarketCache(max_age_s=10.0, clock=clock)
    cache.check(None)
    cache.put([b"k"], b"K" * WIDTH)
    cache.check(None)
    assert cache.missing([b"k"]) == []
    clock.now = 11.0
    cache.check(None)
    assert cache.missing([b"k"]) == [b"k"]


@pytest.mark.integration
@pytest.mark.parametrize("lean", [False, True], ids=["redis-py", "lean connection"])
def test_a_changed_market_is_read_after_the_market_job_bumps_its_version(
    settings: Settings, lean: bool
) -> None:
    url, project = settings.require().redis_url, settings.feast_project
    complex_key = layout.entity_key(project, "complex_id", "C-cache")
    level = MODEL_FEATURES.index("avg_price_3m")

    async def body() -> None:
        client = aioredis.from_url(url)
        wire = WireConnection(url) if lean else None
        try:
            features = {name: np.array([np.nan]) for name in LISTING_FEATURES}
            features["area_sqm"] = np.array([84.0])
            keys = {"complex_id": ["C-cache"], "dong_id": ["D-cache"], "region_code": ["99999"]}
            rows = ListingRows([uuid4()], ["L-cache"], [datetime.now(UTC)], features, keys)
            assert await ListingWriter(client, project).write(rows) == 1

            async def set_market(avg: float) -> None:
                figures = {"avg_price_3m": avg, "deals_3m": 30.0}
                await client.hset(
                    complex_key,
                    mapping={
                        layout.field(MARKET_VIEWS[0], name): layout.encode_double(value)
                        for name, value in figures.items()
                    },
                )

            await set_market(1_000.0)
            reader = OnlineReader(client, project, wire)
            assert (await reader.read(["L-cache"])).matrix[0, level] == 1_000.0
            assert (await reader.read_market([("C-cache", "D-cache", "99999")]))[
                "avg_price_3m"
            ].tolist() == [1_000.0]

            await set_market(1_500.0)  # written, but the version did not move: remembered
            assert (await reader.read(["L-cache"])).matrix[0, level] == 1_000.0

            await client.incr(layout.market_version_key(project))  # as the market job does
            assert (await reader.read(["L-cache"])).matrix[0, level] == 1_500.0
            await set_market(1_700.0)
            await client.incr(layout.market_version_key(project))
            assert (await reader.read_market([("C-cache", "D-cache", "99999")]))[
                "avg_price_3m"
            ].tolist() == [1_700.0]
            fresh = OnlineReader(client, project, wire)  # a new reader reads what is there
            assert (await fresh.read(["L-cache", "L-none"])).found.tolist() == [True, False]
        finally:
            await client.delete(complex_key, layout.market_version_key(project))
            await client.aclose()
            if wire is not None:
                await wire.close()

    asyncio.run(body())
