"""Feature formulas: plain functions used by both the batch jobs and the stream agents.

Training and serving must compute the same thing, so every formula lives here once. The
model's input columns and their order are :data:`MODEL_FEATURES`; missing values stay
``None``/NaN, which XGBoost handles natively.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
from numpy.typing import ArrayLike, NDArray

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


def floor_penalty(floor: ArrayLike, top_floor: ArrayLike | None = None) -> NDArray[np.float64]:
    """Relative price effect of the floor (the stated rule; vectorised).

    1st floor −8%, 2nd −4%, the top floor −3%, mid-high floors (at least 60% of the
    building's height) +3%, others 0. Without the building's height, floors from the 10th
    up count as mid-high and none as the top.
    """
    f = np.asarray(floor, dtype=np.float64)
    top = np.full_like(f, np.nan) if top_floor is None else np.asarray(top_floor, dtype=np.float64)
    known = ~np.isnan(top)
    return np.select(
        [f <= 1, f == 2, known & (f >= top), known & (f >= 0.6 * top), ~known & (f >= 10)],
        [-0.08, -0.04, -0.03, 0.03, 0.03],
        default=0.0,
    )


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
