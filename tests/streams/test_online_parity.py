"""The direct Redis writer writes exactly what Feast writes, and Feast reads it back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import redis

from homeloop import online_layout as layout
from homeloop.featurestore import LISTING_PUSH, LISTING_VIEW, apply_repo, feature_store
from homeloop.settings import Settings
from streams.online_writer import FEATURES, OnlineFeatureWriter, feature_row
from tests.factories import listing_event

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def events() -> list:  # type: ignore[type-arg]
    return [
        listing_event("P-1", event_time=T0),
        listing_event(
            "P-2", lat=None, lon=None, asking_price=None, event_time=T0
        ),  # missing values
        listing_event("P-3", floor=1, area_sqm=33.1, event_time=T0),
    ]


def write_direct(settings: Settings, batch: list) -> int:  # type: ignore[type-arg]
    async def run() -> int:
        writer = OnlineFeatureWriter(settings)
        try:
            return await writer.write(batch)
        finally:
            await writer.close()

    return asyncio.run(run())


def test_direct_writes_are_byte_for_byte_what_feast_writes(settings: Settings) -> None:
    feast_side = settings.model_copy(update={"feast_project": settings.feast_project + "f"})
    direct_side = settings.model_copy(update={"feast_project": settings.feast_project + "d"})
    for s in (feast_side, direct_side):
        apply_repo(s)
    batch = events()

    from feast.data_source import PushMode

    frame = pd.DataFrame(
        [
            {"listing_id": e.listing_id, **feature_row(e), "event_timestamp": e.event_time}
            for e in batch
        ]
    )
    feature_store(feast_side).push(LISTING_PUSH, frame, to=PushMode.ONLINE)
    assert write_direct(direct_side, batch) == 3

    client = redis.Redis.from_url(settings.require().redis_url)
    for event in batch:
        by_feast = client.hgetall(
            layout.entity_key(feast_side.feast_project, "listing_id", event.listing_id)
        )
        direct = client.hgetall(
            layout.entity_key(direct_side.feast_project, "listing_id", event.listing_id)
        )
        assert by_feast and direct == by_feast, event.listing_id
    client.close()

    refs = [f"{LISTING_VIEW}:{name}" for name in FEATURES]
    rows = [{"listing_id": e.listing_id} for e in batch]
    read = feature_store(direct_side).get_online_features(features=refs, entity_rows=rows).to_dict()
    for i, event in enumerate(batch):
        assert {name: read[name][i] for name in FEATURES} == pytest.approx(feature_row(event))
    assert read["lat"][1] is None and read["asking_price_per_pyeong"][1] is None


def test_replays_and_older_events_change_nothing(settings: Settings) -> None:
    apply_repo(settings)
    newer = listing_event("R-1", asking_price=120_000, event_time=T0)
    older = listing_event("R-1", asking_price=90_000, event_time=T0 - timedelta(days=1))
    assert write_direct(settings, [newer]) == 1
    assert write_direct(settings, [newer]) == 0  # replay after a crash
    assert write_direct(settings, [older]) == 0  # late, older event
    # within one batch the newest event per listing wins
    assert (
        write_direct(
            settings,
            [
                listing_event("R-2", floor=3, event_time=T0),
                listing_event("R-2", floor=9, event_time=T0 + timedelta(hours=1)),
            ],
        )
        == 1
    )
    read = (
        feature_store(settings)
        .get_online_features(
            features=[f"{LISTING_VIEW}:asking_price_per_pyeong", f"{LISTING_VIEW}:floor"],
            entity_rows=[{"listing_id": "R-1"}, {"listing_id": "R-2"}],
        )
        .to_dict()
    )
    assert read["asking_price_per_pyeong"][0] == pytest.approx(
        feature_row(newer)["asking_price_per_pyeong"]
    )
    assert read["floor"][1] == 9.0
