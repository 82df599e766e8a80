"""The direct Redis writers write exactly what Feast writes, and Feast reads it back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import numpy as np
import pandas as pd
import pytest
import redis
import redis.asyncio as aioredis
from feast.data_source import PushMode

from homeloop import online_layout as layout
from homeloop.features import ENGAGEMENT_FEATURES, LISTING_FEATURES, MODEL_FEATURES
from homeloop.featurestore import ENGAGEMENT_VIEW, LISTING_VIEW, apply_repo, feature_store
from homeloop.online_reader import OnlineReader
from homeloop.settings import Settings
from streams.listing_agent import listing_rows
from streams.online_writer import EngagementWriter, ListingRows, ListingWriter
from tests.factories import listing_event

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
R = TypeVar("R")


def events() -> list:  # type: ignore[type-arg]
    return [
        listing_event("P-1", event_time=T0),
        listing_event("P-2", lat=None, lon=None, asking_price=None, event_time=T0),  # missing
        listing_event("P-3", floor=1, area_sqm=33.1, event_time=T0),
    ]


def with_redis(settings: Settings, action: Callable[[aioredis.Redis], Awaitable[R]]) -> R:
    async def run() -> R:
        client = aioredis.from_url(settings.require().redis_url)
        try:
            return await action(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def write_listings(settings: Settings, rows: ListingRows) -> int:
    return with_redis(settings, lambda r: ListingWriter(r, settings.feast_project).write(rows))


def read_both_ways(feast_side: Settings, direct_side: Settings, ids: list[str]) -> np.ndarray:
    """The reader's matrix for hashes Feast wrote (no vector field: read field by field) and
    for the same rows written by homeloop's writers (read from their vector fields): equal.
    The engagement and listing columns are compared; the rest (markets) are not written."""
    client = redis.Redis.from_url(feast_side.require().redis_url)
    for s, has_vectors in ((feast_side, False), (direct_side, True)):
        for listing in ids:
            key = layout.entity_key(s.feast_project, "listing_id", listing)
            fields = client.hkeys(key)
            assert any(f.startswith(b"_vec:") for f in fields) == has_vectors, (s, fields)
            # every value small enough that Redis keeps the hash compact (~0.7 KB, not 1.8)
            assert client.object("encoding", key) == b"listpack", key
    client.close()

    async def read(client: aioredis.Redis) -> tuple[np.ndarray, np.ndarray]:
        by_feast = await OnlineReader(client, feast_side.feast_project).read(ids)
        direct = await OnlineReader(client, direct_side.feast_project).read(ids)
        return by_feast.matrix, direct.matrix

    by_feast, direct = with_redis(feast_side, read)
    assert np.array_equal(by_feast, direct, equal_nan=True)
    return direct


def feast_fields(client: redis.Redis, key: bytes, view: str, names: tuple[str, ...]) -> dict:  # type: ignore[type-arg]
    """The hash fields Feast itself writes for a view: its features and its timestamp."""
    fields = [layout.field(view, n) for n in names] + [layout.timestamp_field(view).encode()]
    return dict(zip(fields, client.hmget(key, fields), strict=True))


def test_direct_listing_writes_are_byte_for_byte_what_feast_writes(settings: Settings) -> None:
    feast_side = settings.model_copy(update={"feast_project": settings.feast_project + "f"})
    direct_side = settings.model_copy(update={"feast_project": settings.feast_project + "d"})
    for s in (feast_side, direct_side):
        apply_repo(s)
    rows, _ = listing_rows(events())
    feature_store(feast_side).push("listing_push", rows.push_frame(), to=PushMode.ONLINE)
    assert write_listings(direct_side, rows) == 3

    client = redis.Redis.from_url(settings.require().redis_url)
    names = (*LISTING_FEATURES, "complex_id", "dong_id", "region_code")
    for listing in rows.listing_ids:
        keys = [
            layout.entity_key(s.feast_project, "listing_id", listing)
            for s in (feast_side, direct_side)
        ]
        by_feast, direct = (feast_fields(client, k, LISTING_VIEW, names) for k in keys)
        assert all(v is not None for v in by_feast.values()) and direct == by_feast, listing
    client.close()

    refs = [f"{LISTING_VIEW}:{name}" for name in names]
    read = (
        feature_store(direct_side)
        .get_online_features(
            features=refs, entity_rows=[{"listing_id": i} for i in rows.listing_ids]
        )
        .to_dict()
    )
    assert read["lat"][1] is None and read["asking_price_per_pyeong"][1] is None
    assert read["area_sqm"][2] == 33.1 and read["floor_penalty"][2] == -0.08
    assert read["dong_id"][0] == "41135:정자동"
    matrix = read_both_ways(feast_side, direct_side, rows.listing_ids)
    assert matrix[2, MODEL_FEATURES.index("area_sqm")] == 33.1
    assert np.isnan(matrix[1, MODEL_FEATURES.index("lat")])


def test_direct_engagement_writes_are_what_feast_writes(settings: Settings) -> None:
    feast_side = settings.model_copy(update={"feast_project": settings.feast_project + "f"})
    direct_side = settings.model_copy(update={"feast_project": settings.feast_project + "d"})
    for s in (feast_side, direct_side):
        apply_repo(s)
    adds = {
        "E-1": [("click", "e1", T0), ("click", "e2", T0 + timedelta(minutes=10))],
        "E-2": [("inquiry", "e3", T0)],
    }
    written = with_redis(
        direct_side, lambda r: EngagementWriter(r, direct_side.feast_project).add(adds)
    )
    pushed = pd.DataFrame({"listing_id": written.listing_ids, "event_timestamp": written.as_of})
    pushed["created"] = pd.Timestamp.now(tz="UTC")
    for name in ENGAGEMENT_FEATURES:
        pushed[name] = written.counts[name]
    feature_store(feast_side).push("engagement_push", pushed, to=PushMode.ONLINE)
    client = redis.Redis.from_url(settings.require().redis_url)
    for listing in adds:
        keys = [
            layout.entity_key(s.feast_project, "listing_id", listing)
            for s in (feast_side, direct_side)
        ]
        by_feast, direct = (
            feast_fields(client, k, ENGAGEMENT_VIEW, ENGAGEMENT_FEATURES) for k in keys
        )
        assert all(v is not None for v in by_feast.values()) and direct == by_feast, listing
    client.close()
    assert written.counts["clicks_1h"] == [2.0, 0.0] and written.counts["inquiries_7d"] == [
        0.0,
        1.0,
    ]
    assert written.as_of == [T0 + timedelta(minutes=10), T0]
    matrix = read_both_ways(feast_side, direct_side, list(adds))
    assert matrix[:, MODEL_FEATURES.index("clicks_1h")].tolist() == [2.0, 0.0]


def test_replays_and_older_events_change_nothing(settings: Settings) -> None:
    apply_repo(settings)
    newer = listing_event("R-1", asking_price=120_000, event_time=T0)
    older = listing_event("R-1", asking_price=90_000, event_time=T0 - timedelta(days=1))
    assert write_listings(settings, listing_rows([newer])[0]) == 1
    assert write_listings(settings, listing_rows([newer])[0]) == 0  # replay after a crash
    assert write_listings(settings, listing_rows([older])[0]) == 0  # late, older event
    # within one batch the newest event per listing wins, whatever the order
    batch = [
        listing_event("R-2", floor=9, event_time=T0 + timedelta(hours=1)),
        listing_event("R-2", floor=3, event_time=T0),
    ]
    assert write_listings(settings, listing_rows(batch)[0]) == 1
    read = (
        feature_store(settings)
        .get_online_features(
            features=[f"{LISTING_VIEW}:asking_price_per_pyeong", f"{LISTING_VIEW}:floor"],
            entity_rows=[{"listing_id": "R-1"}, {"listing_id": "R-2"}],
        )
        .to_dict()
    )
    expected = listing_rows([newer])[0].features["asking_price_per_pyeong"][0]
    assert read["asking_price_per_pyeong"][0] == pytest.approx(expected)
    assert read["floor"][1] == 9.0


def test_the_redis_windows_count_what_the_reference_function_counts(settings: Settings) -> None:
    """The agent counts in Redis (Lua); homeloop.engagement is the plain reference."""
    from homeloop.engagement import EngagementWindows

    rng = np.random.default_rng(3)
    reference = EngagementWindows()
    writer_rows = []

    async def run(client: aioredis.Redis) -> None:
        writer = EngagementWriter(client, settings.feast_project)
        for batch in range(30):
            adds: dict[str, list[tuple[str, str, datetime]]] = {}
            for i in range(20):  # out of order within a batch and across batches
                at = T0 + timedelta(minutes=float(rng.uniform(0, 60 * 24 * 10)))
                kind = "click" if rng.random() < 0.7 else "inquiry"
                listing = f"W-{rng.integers(0, 3)}"
                adds.setdefault(listing, []).append((kind, f"{batch}-{i}", at))
                reference.add(listing, kind, at)
            writer_rows.append(await writer.add(adds))

    with_redis(settings, run)
    last = writer_rows[-1]
    for i, listing in enumerate(last.listing_ids):
        expected = reference.counts(listing, last.as_of[i])
        assert {name: last.counts[name][i] for name in expected} == expected, listing
