"""Feature formulas: plain functions used by both the batch jobs and the stream agents.

Training and serving must compute the same thing, so every formula lives here once, and
vectorised: the stream agent computes a whole micro-batch in one call, the batch jobs a
whole history. The model's input columns and their order are :data:`MODEL_FEATURES`;
missing values stay NaN, which XGBoost handles natively.

Implausible inputs that pass the event schema (a 900 ㎡ flat, a 120th floor) are not
guessed at: the feature they feed is NaN and the reason is reported (:data:`QUALITY_REASONS`)
so the agents can count it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from homeloop import engagement, geo, price_levels
from homeloop.events import MAX_PRICE_MANWON, MIN_PRICE_MANWON, ListingEvent
from homeloop.price_levels import dong_id  # noqa: F401  (re-exported: the ids of the views)
from homeloop.units import SQM_PER_PYEONG

# The listing view's numeric fields, in the model's column order.
LISTING_FEATURES: tuple[str, ...] = (
    "area_sqm",
    "floor",
    "floor_penalty",
    "building_age",
    "subway_distance_m",
    "school_score",
    "asking_price_per_pyeong",
    "lat",
    "lon",
)
# Where the listing sits: the join keys of the market views, kept with the listing.
LISTING_KEYS: tuple[str, ...] = ("complex_id", "dong_id", "region_code")
MARKET_FEATURES: tuple[str, ...] = price_levels.RESOLVED
ENGAGEMENT_FEATURES: tuple[str, ...] = engagement.FEATURES
MODEL_FEATURES: tuple[str, ...] = LISTING_FEATURES + MARKET_FEATURES + ENGAGEMENT_FEATURES

# Plausible ranges; outside them the feature is missing, not clipped.
AREA_RANGE = (10.0, 300.0)  # ㎡, 전용면적 of an apartment
FLOOR_RANGE = (-3, 80)
OLDEST_BUILD_YEAR = 1950
PRESALE_YEARS = 5  # a pre-sale (분양권) listing may name a completion year this far ahead
QUALITY_REASONS = (
    "missing_coordinates",
    "absurd_area",
    "absurd_floor",
    "absurd_build_year",
    "absurd_asking_price",
)

Columns = Mapping[str, Any]  # array-likes: lists, Series, arrays
FeatureRow = dict[str, float | None]


def floor_penalty(floor: ArrayLike, top_floor: ArrayLike | None = None) -> NDArray[np.float64]:
    """Relative price effect of the floor (the stated rule; vectorised).

    1st floor −8%, 2nd −4%, the top floor −3%, mid-high floors (at least 60% of the
    building's height) +3%, others 0. Without the building's height, floors from the 10th
    up count as mid-high and none as the top. NaN in, NaN out.
    """
    f = np.asarray(floor, dtype=np.float64)
    top = np.full_like(f, np.nan) if top_floor is None else np.asarray(top_floor, dtype=np.float64)
    known = ~np.isnan(top)
    out = np.select(
        [f <= 1, f == 2, known & (f >= top), known & (f >= 0.6 * top), ~known & (f >= 10)],
        [-0.08, -0.04, -0.03, 0.03, 0.03],
        default=0.0,
    )
    return np.where(np.isnan(f), np.nan, out)


def building_age(build_year: int, at: datetime) -> int:
    """Years since completion at ``at``; a new building counts as 0, never negative."""
    return max(0, at.year - build_year)


def _floats(values: ArrayLike) -> NDArray[np.float64]:
    """Floats with ``None`` (or pandas' NA) as NaN."""
    if isinstance(values, list | tuple):  # a stream batch: numpy reads None as NaN, 10x faster
        try:
            return np.array(values, dtype=np.float64)
        except TypeError:  # pandas' NA among them
            pass
    return np.asarray(pd.array(values, dtype="Float64").to_numpy(np.float64, na_value=np.nan))


def _years(at: Any) -> NDArray[np.float64]:
    """The UTC calendar year of each time (naive times count as UTC)."""
    if isinstance(at, list | tuple) and all(isinstance(a, datetime) for a in at):
        # A stream batch: pandas' parsing costs ~0.4 ms a call, which small batches feel.
        return np.array([(a.astimezone(UTC) if a.tzinfo else a).year for a in at], np.float64)
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(at), utc=True)).year.to_numpy(np.float64)


def listing_feature_columns(
    attrs: Columns, at: Any
) -> tuple[dict[str, NDArray[np.float64]], dict[str, NDArray[np.bool_]]]:
    """The listing view's features for many listings at once, and the quality flags.

    ``attrs`` holds ``area_sqm``, ``floor``, ``build_year``, ``lat``, ``lon`` and
    ``asking_price`` (None/NaN where unknown); ``at`` the time each row is as of.
    """
    area = _floats(attrs["area_sqm"])
    floor = _floats(attrs["floor"])
    build_year = _floats(attrs["build_year"])
    lat, lon = _floats(attrs["lat"]), _floats(attrs["lon"])
    asking = _floats(attrs["asking_price"])
    year = _years(at)

    flags = {
        "missing_coordinates": np.isnan(lat) | np.isnan(lon),
        "absurd_area": ~np.isnan(area) & ((area < AREA_RANGE[0]) | (area > AREA_RANGE[1])),
        "absurd_floor": ~np.isnan(floor) & ((floor < FLOOR_RANGE[0]) | (floor > FLOOR_RANGE[1])),
        "absurd_build_year": ~np.isnan(build_year)
        & ((build_year < OLDEST_BUILD_YEAR) | (build_year > year + PRESALE_YEARS)),
        "absurd_asking_price": (asking > 0)
        & ((asking < MIN_PRICE_MANWON) | (asking > MAX_PRICE_MANWON)),
    }
    area = np.where(flags["absurd_area"], np.nan, area)
    floor = np.where(flags["absurd_floor"], np.nan, floor)
    age = np.where(flags["absurd_build_year"], np.nan, np.maximum(0.0, year - build_year))
    usable_asking = (asking > 0) & ~flags["absurd_asking_price"]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_pyeong = np.where(usable_asking, asking / (area / SQM_PER_PYEONG), np.nan)
    subway, school = geo.near(lat, lon)
    features = {
        "area_sqm": area,
        "floor": floor,
        "floor_penalty": floor_penalty(floor),
        "building_age": age,
        "subway_distance_m": subway,
        "school_score": school,
        "asking_price_per_pyeong": per_pyeong,
        "lat": lat,
        "lon": lon,
    }
    return features, flags


def event_columns(events: Sequence[ListingEvent]) -> tuple[dict[str, list[object]], list[datetime]]:
    """Listing events as the columns :func:`listing_feature_columns` takes."""
    names = ("area_sqm", "floor", "build_year", "lat", "lon", "asking_price")
    columns: dict[str, list[object]] = {name: [getattr(e, name) for e in events] for name in names}
    return columns, [e.event_time for e in events]


def listing_features(event: ListingEvent) -> FeatureRow:
    """One listing's features as of its event time (the vectorised formulas, one row)."""
    columns, at = event_columns([event])
    features, _ = listing_feature_columns(columns, at)
    return {
        name: None if math.isnan(v := float(values[0])) else v for name, values in features.items()
    }


def feature_vector(
    row: Mapping[str, float | None], columns: tuple[str, ...] = MODEL_FEATURES
) -> list[float]:
    """Values in model column order, ``None`` (or absent) as NaN (XGBoost's missing value)."""
    return [math.nan if (v := row.get(name)) is None else float(v) for name in columns]
