"""Feature formulas: the same values for the stream and the batch path."""

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from homeloop import geo
from homeloop.events import ListingEvent
from homeloop.features import (
    LISTING_FEATURES,
    MODEL_FEATURES,
    building_age,
    event_columns,
    feature_vector,
    listing_feature_columns,
    listing_features,
)
from homeloop.units import SQM_PER_PYEONG, price_per_pyeong, to_manwon
from tests.factories import listing_event


def event(**overrides: object) -> ListingEvent:
    fields: dict[str, object] = dict(
        area_sqm=SQM_PER_PYEONG * 30,
        floor=7,
        build_year=2010,
        asking_price=120_000,
        event_time=datetime(2026, 3, 1, tzinfo=UTC),
    )
    return listing_event(**(fields | overrides))


def test_price_per_pyeong_uses_the_legal_pyeong() -> None:
    assert math.isclose(price_per_pyeong(120_000, SQM_PER_PYEONG * 30), 4_000.0)
    assert to_manwon(1234.5) == 1234 and to_manwon(1235.5) == 1236  # banker's rounding, stated


def test_building_age_never_negative() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert building_age(2010, at) == 16
    assert building_age(2028, at) == 0


def test_listing_features_as_of_event_time() -> None:
    row = listing_features(event())
    assert row["building_age"] == 16.0
    assert math.isclose(row["asking_price_per_pyeong"] or 0, 4_000.0)
    assert set(row) == set(LISTING_FEATURES)
    assert row["floor_penalty"] == 0.0


def test_missing_values_stay_missing() -> None:
    row = listing_features(event(asking_price=None, lat=None, lon=None))
    assert row["asking_price_per_pyeong"] is None and row["lat"] is None
    vector = feature_vector(row)
    assert len(vector) == len(MODEL_FEATURES)
    assert math.isnan(vector[MODEL_FEATURES.index("lat")])
    assert vector[MODEL_FEATURES.index("floor")] == 7.0


def test_geo_features_come_from_the_station_and_school_tables() -> None:
    row = listing_features(event(lat=37.5665, lon=126.9780))
    assert row["subway_distance_m"] == geo.subway_distance_m(37.5665, 126.9780)
    assert row["school_score"] == geo.school_score(37.5665, 126.9780)
    assert listing_features(event(lat=None, lon=None))["subway_distance_m"] is None


def test_implausible_values_are_missing_and_flagged_not_guessed() -> None:
    events = [
        event(),
        event(area_sqm=900.0),
        event(floor=120),
        event(build_year=2040),
        event(asking_price=5),
        event(lat=None, lon=None),
    ]
    columns, at = event_columns(events)
    features, flags = listing_feature_columns(columns, at)
    assert not any(flag[0] for flag in flags.values())
    assert flags["absurd_area"].tolist() == [False, True, False, False, False, False]
    assert np.isnan(features["area_sqm"][1]) and np.isnan(features["asking_price_per_pyeong"][1])
    assert flags["absurd_floor"][2] and np.isnan(features["floor_penalty"][2])
    assert flags["absurd_build_year"][3] and np.isnan(features["building_age"][3])
    assert flags["absurd_asking_price"][4] and np.isnan(features["asking_price_per_pyeong"][4])
    assert flags["missing_coordinates"][5] and np.isnan(features["school_score"][5])
    # everything else of a flagged row is still computed
    assert features["area_sqm"][2] == events[2].area_sqm and features["floor"][1] == 7.0


def test_a_batch_equals_its_rows_one_by_one() -> None:
    events = [
        event(floor=f, area_sqm=40.0 + f, asking_price=None if f % 3 else 90_000)
        for f in range(1, 30)
    ]
    columns, at = event_columns(events)
    features, _ = listing_feature_columns(columns, at)
    for i, one in enumerate(events):
        assert np.allclose(
            feature_vector(listing_features(one), LISTING_FEATURES),
            [features[name][i] for name in LISTING_FEATURES],
            equal_nan=True,
        )


def test_a_stream_batch_and_a_frame_give_the_same_features() -> None:
    """Lists (the stream's fast path) and a frame with pandas' NA (the batch jobs) agree."""
    events = [
        event(floor=f, asking_price=None if f % 2 else 90_000, lat=None if f == 3 else 37.5)
        for f in range(1, 8)
    ]
    columns, at = event_columns(events)
    from_lists, _ = listing_feature_columns(columns, at)
    frame = pd.DataFrame(columns).astype({"asking_price": "Int64", "lat": "Float64"})
    from_frame, _ = listing_feature_columns(frame, pd.Series(at))
    for name in LISTING_FEATURES:
        assert np.array_equal(from_lists[name], from_frame[name], equal_nan=True), name
