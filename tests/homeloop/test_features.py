"""Feature formulas: the same values for the stream and the batch path."""

import math
from datetime import UTC, datetime

from homeloop.events import ListingEvent
from homeloop.features import MODEL_FEATURES, building_age, feature_vector, listing_features
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
    assert set(row) == set(MODEL_FEATURES)


def test_missing_values_stay_missing() -> None:
    row = listing_features(event(asking_price=None, lat=None, lon=None))
    assert row["asking_price_per_pyeong"] is None and row["lat"] is None
    vector = feature_vector(row)
    assert len(vector) == len(MODEL_FEATURES)
    assert math.isnan(vector[MODEL_FEATURES.index("lat")])
    assert vector[MODEL_FEATURES.index("floor")] == 7.0
