"""The serving tests' shared setup: a champion, its market, listings in the online store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from batch.market import run_market_job
from batch.train import run_training
from homeloop.settings import Settings
from homeloop.stack import provision
from streams.listing_agent import listing_rows
from streams.online_writer import ListingWriter
from tests.conftest import drop_schema, isolated
from tests.factories import listing_event, synthetic_deals

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def served(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A champion, the market views of its complex, and three listings in the online store."""
    settings = isolated(stack_settings, tmp_path_factory.mktemp("api") / "data").model_copy(
        update={"serving_batch_limit": 3, "serving_registry_poll_s": 3600}
    )
    provision(settings)
    deals = synthetic_deals(3_000)
    run_training(settings, deals)
    run_market_job(settings, datetime(2026, 1, 1, tzinfo=UTC), T0, deals=deals, leases=None)
    events = [listing_event(f"A-{i}", event_time=T0, area_sqm=60.0 + 20 * i) for i in range(3)]

    async def write() -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(settings.require().redis_url)
        await ListingWriter(client, settings.feast_project).write(listing_rows(events)[0])
        await client.aclose()

    asyncio.run(write())
    yield settings
    drop_schema(settings)
