"""Feast definitions for homeloop: entities, sources, feature views and feature services.

Kept small and commented like Feast's own template. The stream worker pushes listing
features through ``listing_push``; serving reads them back through ``price_model_v1``.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float64, String

# A listing on the marketplace; its id is the Kafka key of every listing event.
listing = Entity(
    name="listing",
    join_keys=["listing_id"],
    value_type=ValueType.STRING,
    description="A listing on the marketplace (listing_id from the listings topic)",
)

# The offline copy of everything pushed, so what was served can be rebuilt. The path is
# relative to the repo's data directory, set per deployment by homeloop.featurestore.
listing_batch_source = FileSource(
    name="listing_batch_source",
    path="listing_features.parquet",
    timestamp_field="event_timestamp",
)

# The stream worker writes listing features here, micro-batched, as listing events arrive.
listing_push = PushSource(name="listing_push", batch_source=listing_batch_source)

# Attributes of the listing itself, computed by homeloop.features.listing_features.
listing_features = FeatureView(
    name="listing_features",
    entities=[listing],
    ttl=timedelta(days=365),
    schema=[
        Field(name="area_sqm", dtype=Float64, description="전용면적, ㎡"),
        Field(name="floor", dtype=Float64),
        Field(name="building_age", dtype=Float64, description="years since build_year"),
        Field(name="lat", dtype=Float64),
        Field(name="lon", dtype=Float64),
        Field(name="asking_price_per_pyeong", dtype=Float64, description="만원 per 평"),
        Field(name="complex_id", dtype=String),
        Field(name="region_code", dtype=String, description="5-digit 시군구 code"),
    ],
    online=True,
    source=listing_push,
    tags={"team": "homeloop", "stream": "listings"},
)

# What the price model reads, versioned so a new model can ask for a new set.
price_model_v1 = FeatureService(
    name="price_model_v1",
    features=[listing_features],
    description="Inputs of the price model, version 1",
)

# Everything `homeloop provision` registers, in dependency order.
OBJECTS: list[Entity | PushSource | FeatureView | FeatureService] = [
    listing,
    listing_push,
    listing_features,
    price_model_v1,
]
