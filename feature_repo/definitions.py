"""Feast definitions for homeloop: entities, sources, feature views and feature services.

Kept small and commented like Feast's own template. Every formula behind these views is a
plain function in ``homeloop`` (``features``, ``engagement``, ``price_levels``) that the
stream agents and the batch jobs both call. The offline store is PostgreSQL: the stream
agents append every value they write online to the ``*_log`` tables, and the daily market
job writes the ``market_*_daily`` tables (migration 0002), so training sets are rebuilt
point-in-time from exactly what was served.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, PushSource, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)
from feast.types import Float64, String

from homeloop.features import ENGAGEMENT_FEATURES, LISTING_FEATURES
from homeloop.price_levels import LEVEL_FEATURES

# --- Entities -----------------------------------------------------------------------------

# A listing on the marketplace; its id is the Kafka key of every listing and user event.
listing = Entity(name="listing", join_keys=["listing_id"], value_type=ValueType.STRING)
# An apartment complex (단지).
complex_ = Entity(name="complex", join_keys=["complex_id"], value_type=ValueType.STRING)
# A 법정동, keyed "region_code:dong" because dong names repeat across 시군구.
dong = Entity(name="dong", join_keys=["dong_id"], value_type=ValueType.STRING)
# A 시군구, by its 5-digit code (LAWD_CD).
region = Entity(name="region", join_keys=["region_code"], value_type=ValueType.STRING)

# --- Listing features (stream: listings) --------------------------------------------------

# The offline copy of every value the listing agent wrote online (one row per event).
listing_log = PostgreSQLSource(
    name="listing_features_log",
    table="listing_features_log",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
listing_push = PushSource(name="listing_push", batch_source=listing_log)

# Attributes of the listing (homeloop.features.listing_feature_columns) and where it sits.
listing_features = FeatureView(
    name="listing_features",
    entities=[listing],
    ttl=timedelta(days=365),
    schema=[
        *[Field(name=name, dtype=Float64) for name in LISTING_FEATURES],
        Field(name="complex_id", dtype=String),
        Field(name="dong_id", dtype=String),
        Field(name="region_code", dtype=String),
    ],
    source=listing_push,
    tags={"stream": "listings"},
)

# --- Engagement (stream: user-events) -----------------------------------------------------

# Clicks and inquiries per listing over sliding 1 h / 24 h / 7 d windows in event time
# (homeloop.engagement), rewritten when an event arrives and when a window slides past one.
engagement_log = PostgreSQLSource(
    name="engagement_features_log",
    table="engagement_features_log",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
engagement_push = PushSource(name="engagement_push", batch_source=engagement_log)
engagement_features = FeatureView(
    name="engagement_features",
    entities=[listing],
    ttl=timedelta(days=7),
    schema=[Field(name=name, dtype=Float64) for name in ENGAGEMENT_FEATURES],
    source=engagement_push,
    tags={"stream": "user-events"},
)

# --- Market (batch, daily, materialized) --------------------------------------------------


def _market_view(level: str, entity: Entity) -> FeatureView:
    """One level's own price figures as of each day (homeloop.price_levels.level_stats).

    The fallback from complex to dong to region happens when the model's vector is built
    (``price_levels.resolve``), in serving and in training alike.
    """
    source = PostgreSQLSource(
        name=f"market_{level}_daily",
        table=f"market_{level}_daily",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    return FeatureView(
        name=f"{level}_market",
        entities=[entity],
        ttl=timedelta(days=3),  # a missed daily run shows as missing, not as stale truth
        schema=[Field(name=name, dtype=Float64) for name in LEVEL_FEATURES],
        source=source,
        tags={"batch": "daily"},
    )


complex_market = _market_view("complex", complex_)
dong_market = _market_view("dong", dong)
region_market = _market_view("region", region)
MARKET_VIEWS = (complex_market, dong_market, region_market)

# --- Feature services ---------------------------------------------------------------------

# What the price model reads, versioned so a new model can ask for a new set.
price_model_v1 = FeatureService(
    name="price_model_v1",
    features=[listing_features, *MARKET_VIEWS, engagement_features],
    description="Inputs of the price model, version 1",
)

# Everything `homeloop provision` registers, in dependency order.
OBJECTS: list[Entity | PushSource | PostgreSQLSource | FeatureView | FeatureService] = [
    listing,
    complex_,
    dong,
    region,
    listing_push,
    engagement_push,
    listing_features,
    engagement_features,
    *MARKET_VIEWS,
    price_model_v1,
]
