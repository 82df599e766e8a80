"""Feature formulas: plain functions used by both the batch jobs and the stream agents.

Training and serving must compute the same thing, so every formula lives here once. The
model's input columns and their order are :data:`MODEL_FEATURES`; missing values stay
``None``/NaN, which XGBoost handles natively.
"""

from __future__ import annotations

import math
from datetime import datetime

from homeloop.events import ListingEvent
from homeloop.units import price_per_pyeong

# The listing feature view's fields, in the model's column order.
LISTING_FEATURES: tuple[str, ...] = (
    "area_sqm",
    "floor",
    "building_age",
    "lat",
    "lon",
    "asking_price_per_pyeong",
)
MODEL_FEATURES: tuple[str, ...] = LISTING_FEATURES

FeatureRow = dict[str, float | None]


def building_age(build_year: int, at: datetime) -> int:
    """Years since completion at ``at``; a new building counts as 0, never negative."""
    return max(0, at.year - build_year)


def listing_features(event: ListingEvent) -> FeatureRow:
    """The listing's features as of its event time."""
    asking = (
        price_per_pyeong(event.asking_price, event.area_sqm)
        if event.asking_price is not None and event.asking_price > 0
        else None
    )
    return {
        "area_sqm": event.area_sqm,
        "floor": float(event.floor),
        "building_age": float(building_age(event.build_year, event.event_time)),
        "lat": event.lat,
        "lon": event.lon,
        "asking_price_per_pyeong": asking,
    }


def feature_vector(row: FeatureRow, columns: tuple[str, ...] = MODEL_FEATURES) -> list[float]:
    """Values in model column order, ``None`` as NaN (XGBoost's missing value)."""
    return [math.nan if (v := row.get(name)) is None else float(v) for name in columns]
