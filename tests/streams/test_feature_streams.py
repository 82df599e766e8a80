"""The feature agents on the real broker, Redis and PostgreSQL, read back online and offline.

The parity test of the issue: events go through the streams; then the online features
(homeloop's one-round-trip reader and Feast's own ``get_online_features``) and the offline
point-in-time features (Feast's historical join over the offline log) are read for the
same listings and times, and must be equal.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import redis
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from batch.market import run_market_job
from batch.training_set import assemble, entity_rows, point_in_time
from homeloop import engagement
from homeloop.db import connect
from homeloop.events import Event, UserEvent
from homeloop.features import ENGAGEMENT_FEATURES, MODEL_FEATURES, dong_id
from homeloop.featurestore import ENGAGEMENT_VIEW, LISTING_VIEW, apply_repo, feature_store
from homeloop.online_layout import entity_key
from homeloop.online_reader import OnlineReader
from homeloop.redis_wire import WireConnection
from homeloop.settings import Settings
from streams.app import FeatureStreams
from tests.factories import listing_event, synthetic_deals
from tests.topics import read_topic

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def click(listing_id: str, at: datetime, kind: str = "click", **extra: object) -> UserEvent:
    return UserEvent(type=kind, user_id="u1", listing_id=listing_id, event_time=at, **extra)  # type: ignore[arg-type]


async def _produce(settings: Settings, items: Sequence[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.require().kafka_bootstrap_servers)
    await producer.start()
    try:
        for topic, key, value in items:
            await producer.send(settings.topic(topic), key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


def events_to(topic: str, events: Sequence[Event]) -> list[tuple[str, bytes | None, bytes]]:
    return [(topic, getattr(e, "listing_id", "").encode(), e.to_bytes()) for e in events]


def log_rows(settings: Settings, table: str) -> int:
    with connect(settings) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{settings.db_schema}".{table}').fetchone()
    return int(row[0]) if row else 0


def through_streams(
    settings: Settings,
    items: Sequence[tuple[str, bytes | None, bytes]],
    done: object,
    timeout: float = 60.0,
) -> FeatureStreams:
    """Run the feature agents in-process until ``done()`` holds, then stop them."""

    async def run() -> FeatureStreams:
        streams = FeatureStreams(settings)
        await streams.start()
        try:
            await _produce(settings, items)
            deadline = time.monotonic() + timeout
            while not await asyncio.to_thread(done):  # type: ignore[arg-type]
                assert time.monotonic() < deadline, "the agents did not catch up in time"
                await asyncio.sleep(0.2)
            if streams.engagement is not None:
                await streams.engagement.sweep()
        finally:
            await streams.stop()
        return streams

    return asyncio.run(run())


def read_online(settings: Settings, listing_ids: list[str]):  # type: ignore[no-untyped-def]
    import redis.asyncio as aioredis

    async def run():  # type: ignore[no-untyped-def]
        """Read through redis-py and through serving's lean connection: the same features."""
        client = aioredis.from_url(settings.require().redis_url)
        wire = WireConnection(settings.require().redis_url)
        try:
            plain = await OnlineReader(client, settings.feast_project).read(listing_ids)
            lean = await OnlineReader(client, settings.feast_project, wire).read(listing_ids)
        finally:
            await client.aclose()
            await wire.close()
        assert np.array_equal(plain.matrix, lean.matrix, equal_nan=True)
        assert np.array_equal(plain.found, lean.found)
        assert np.array_equal(plain.updated_at_us, lean.updated_at_us, equal_nan=True)
        return plain

    return asyncio.run(run())


@pytest.fixture
def feast_settings(settings: Settings) -> Settings:
    apply_repo(settings)
    deals = synthetic_deals(2_000).assign(
        deal_time=lambda d: T0 - timedelta(days=60) + (d["deal_time"] - d["deal_time"].min()) / 40
    )
    run_market_job(settings, T0 - timedelta(days=10), T0, deals=deals, leases=None)
    return settings


def test_online_equals_offline_point_in_time_for_what_the_streams_wrote(
    feast_settings: Settings,
) -> None:
    settings = feast_settings
    listings = [
        listing_event("A", event_time=T0 + timedelta(minutes=1)),
        listing_event("A", floor=3, asking_price=99_000, event_time=T0 + timedelta(minutes=5)),
        listing_event("B", lat=None, lon=None, event_time=T0 + timedelta(minutes=2)),
        listing_event("C", complex_id="C-new", dong="백현동", event_time=T0 + timedelta(minutes=3)),
    ]
    clicks = [click("A", T0 + timedelta(minutes=m)) for m in (1, 2, 50)] + [
        click("A", T0 + timedelta(minutes=70), "inquiry"),
        click("B", T0 + timedelta(hours=3)),
    ]
    items = events_to("listings", listings) + events_to("user-events", clicks)
    through_streams(
        settings,
        items,
        lambda: (
            log_rows(settings, "listing_features_log") == 4
            and log_rows(settings, "engagement_features_log") >= 2
        ),
    )
    ids = ["A", "B", "C"]
    online = read_online(settings, ids)
    assert online.found.all()

    # Feast's own online read agrees with the one-round-trip reader.
    fs = feature_store(settings)
    refs = [f"{LISTING_VIEW}:{n}" for n in MODEL_FEATURES[:9]]
    refs += [f"{ENGAGEMENT_VIEW}:{n}" for n in ENGAGEMENT_FEATURES]
    sdk = fs.get_online_features(features=refs, entity_rows=[{"listing_id": i} for i in ids])
    sdk_values = sdk.to_dict()
    for name in (*MODEL_FEATURES[:9], *ENGAGEMENT_FEATURES):
        column = [np.nan if v is None else v for v in sdk_values[name]]
        assert np.array_equal(
            online.matrix[:, MODEL_FEATURES.index(name)], column, equal_nan=True
        ), name

    # The newest event of A won online.
    assert online.row(0)["floor"] == 3.0
    # Offline, point-in-time at a moment after everything was written: the same values.
    at = T0 + timedelta(hours=3, minutes=1)
    rows = pd.DataFrame(
        {
            "listing_id": ids,
            "complex_id": ["C1", "C1", "C-new"],
            "dong_id": [dong_id("41135", "정자동")] * 2 + [dong_id("41135", "백현동")],
            "region_code": ["41135"] * 3,
            "event_timestamp": [at] * 3,
            "price": [1] * 3,
        }
    )
    offline = assemble(rows, point_in_time(settings, entity_rows(rows)))
    assert np.array_equal(offline.to_numpy(np.float64), online.matrix, equal_nan=True)
    # And the market part is really there: complex C1 has figures, C-new falls back.
    assert not np.isnan(online.matrix[0, MODEL_FEATURES.index("avg_price_3m")])
    assert not np.isnan(online.matrix[2, MODEL_FEATURES.index("avg_price_3m")])
    # Engagement as of the watermark (B's click at T0+3h, the sweep moved A's windows too):
    # A's clicks at 1, 2 and 50 min and its inquiry at 70 min are in 24 h, none in 1 h.
    a = online.row(0)
    assert (a["clicks_1h"], a["clicks_24h"], a["inquiries_1h"], a["inquiries_24h"]) == (0, 3, 0, 1)

    # Earlier in time, offline gives the earlier value of A (what was served then).
    early = rows.iloc[[0]].assign(event_timestamp=T0 + timedelta(minutes=2))
    then = assemble(early, point_in_time(settings, entity_rows(early)))
    assert then.loc[0, "floor"] == 11.0


def test_windows_slide_without_new_events_and_replays_change_nothing(settings: Settings) -> None:
    apply_repo(settings)
    first = [
        click("W", T0),
        click("W", T0 + timedelta(minutes=30)),
        click("W", T0 + timedelta(hours=2)),
    ]
    # Another listing's event a day later moves the stream's watermark past W's windows.
    later = [click("X", T0 + timedelta(hours=25))]
    events = first + later
    through_streams(
        settings,
        events_to("user-events", events),
        lambda: log_rows(settings, "engagement_features_log") >= 2,
    )
    row = read_online(settings, ["W"]).row(0)
    # Swept as of T0+25h: only the click at T0+2h is in the last 24 h, none in the last hour.
    assert (row["clicks_1h"], row["clicks_24h"], row["clicks_7d"]) == (0, 1, 3)

    # Offline holds both the count as of W's last click and the swept one.
    with connect(settings) as conn:
        got = conn.execute(
            f'SELECT event_timestamp, clicks_1h, clicks_24h FROM "{settings.db_schema}".'
            "engagement_features_log WHERE listing_id = 'W' ORDER BY event_timestamp"
        ).fetchall()
    assert [(r[1], r[2]) for r in got] == [(1.0, 3.0), (0.0, 1.0)]  # as of T0+2h, T0+25h

    client = redis.Redis.from_url(settings.require().redis_url)
    key = entity_key(settings.feast_project, "listing_id", "W")
    before = client.hgetall(key)
    # The same events again (a replay after a crash): nothing changes online or offline.
    through_streams(settings, events_to("user-events", events), lambda: True, timeout=5)
    time.sleep(2)
    assert client.hgetall(key) == before
    assert log_rows(settings, "engagement_features_log") == len(got) + 1  # W twice, X once


def test_bad_input_is_dead_lettered_or_counted_and_the_agent_goes_on(
    feast_settings: Settings,
) -> None:
    settings = feast_settings
    quality = "homeloop_feature_quality_total"
    before = {
        reason: sample(quality, view="listing_features", reason=reason)
        for reason in ("missing_coordinates", "absurd_area", "absurd_floor", "unknown_complex")
    }
    good = [
        listing_event("Q1", lat=None, lon=None, event_time=T0),
        listing_event("Q2", area_sqm=950.0, event_time=T0),
        listing_event("Q3", floor=140, event_time=T0),
        listing_event("Q4", complex_id="nowhere", event_time=T0),
    ]
    items = [
        ("listings", b"bad1", b"{not json"),
        ("listings", b"bad2", json.dumps({"listing_id": "Z"}).encode()),
        ("listings", b"bad3", b""),
        *events_to("listings", good),
        ("user-events", b"bad4", json.dumps({"type": "click"}).encode()),
    ]

    def counted() -> bool:  # the counters move once a batch's online write returns
        return all(
            sample(quality, view="listing_features", reason=reason) >= before[reason] + 1
            for reason in before
        )

    through_streams(
        settings, items, lambda: log_rows(settings, "listing_features_log") == 4 and counted()
    )
    online = read_online(settings, ["Q1", "Q2", "Q3", "Q4"])
    assert online.found.all()
    assert np.isnan(online.row(0)["subway_distance_m"] or np.nan)
    assert online.row(1)["area_sqm"] is None and online.row(1)["floor"] == 11.0
    assert online.row(2)["floor"] is None and online.row(2)["floor_penalty"] is None
    for reason in before:
        assert sample(quality, view="listing_features", reason=reason) == before[reason] + 1, reason
    letters = [json.loads(v) for v in read_topic(settings, "dead-letter", want=5, timeout=10)]
    reasons = sorted(letter["error"].split(":")[0] for letter in letters)
    assert reasons == ["empty", "invalid", "invalid", "invalid", "not_json"]
    # the bad user event is refused by both of its consumers, each saying so
    assert sorted(letter["consumer"] for letter in letters if letter["key"] == "bad4") == [
        "engagement-features",
        "feedback-outcomes",
    ]
    assert engagement.FEATURES == ENGAGEMENT_FEATURES
