"""The hand-written encodings equal protobuf's, and the reader decodes its reply (no I/O)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

from homeloop import online_layout as layout
from homeloop.features import ENGAGEMENT_FEATURES, LISTING_FEATURES, MODEL_FEATURES
from homeloop.online_reader import _SLOTS, decode_rows
from homeloop.price_levels import LEVEL_FEATURES


@pytest.mark.parametrize("value", [0.0, -0.0, 1.5, -273.15, 1e300, 5e-324, 37.123456789])
def test_doubles_are_encoded_as_protobuf_encodes_them(value: float) -> None:
    assert layout.encode_double(value) == Value(double_val=value).SerializeToString()
    assert layout.decode_double_blob(layout.encode_double(value))[0] == value
    assert layout.encode_double(math.nan) == b"" == Value().SerializeToString()


@pytest.mark.parametrize(
    "at",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 0, 5, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 6, 1, 9, 30, 1, 123456, tzinfo=UTC),
    ],
)
def test_timestamps_are_encoded_as_protobuf_encodes_them(at: datetime) -> None:
    us = round(at.timestamp() * 1_000_000)
    assert layout.encode_time_us(us) == layout.encode_time(at)
    assert Timestamp.FromString(layout.encode_time_us(us)).ToDatetime(tzinfo=UTC) == at


def test_double_blob_round_trip_with_missing_values() -> None:
    a = np.array([1.0, np.nan, -2.5])
    b = np.array([np.nan, 0.0, 7.0])
    blob = layout.double_blob([a, b])
    assert len(blob) == 3 * 18  # rows of two 9-byte values
    assert blob[27:36] == layout.encode_double(0.0)  # a present value is Feast's bytes
    assert blob[18] == 0  # a missing one has tag 0
    decoded = layout.decode_double_blob(blob).reshape(3, 2)
    assert np.array_equal(decoded, np.column_stack([a, b]), equal_nan=True)


def test_reader_reply_becomes_the_model_matrix_with_the_market_fallback() -> None:
    own = len(LISTING_FEATURES) + len(ENGAGEMENT_FEATURES)
    width = len(LEVEL_FEATURES)

    def listing(area: float, complex_avg: float, region_avg: float) -> list[float]:
        values = [np.nan] * _SLOTS
        values[LISTING_FEATURES.index("area_sqm")] = area
        values[len(LISTING_FEATURES) + ENGAGEMENT_FEATURES.index("clicks_24h")] = 4.0
        values[own + LEVEL_FEATURES.index("avg_price_3m")] = complex_avg
        values[own + LEVEL_FEATURES.index("deals_3m")] = 3.0 if np.isnan(complex_avg) else 9.0
        values[own + 2 * width + LEVEL_FEATURES.index("avg_price_3m")] = region_avg
        values[own + 2 * width + LEVEL_FEATURES.index("deals_3m")] = 400.0
        return values

    rows = [listing(84.0, 1_500.0, 1_200.0), listing(59.0, np.nan, 1_200.0)]
    blob = layout.double_blob([np.array(c) for c in np.array(rows).T])
    got = decode_rows(["A", "B", "C"], [blob + bytes(9 * _SLOTS), [b"1", b"2", None]])
    col = MODEL_FEATURES.index
    assert got.found.tolist() == [True, True, False]
    assert got.matrix[0, col("area_sqm")] == 84.0 and got.matrix[1, col("clicks_24h")] == 4.0
    assert got.matrix[0, col("avg_price_3m")] == 1_500.0  # the complex has enough deals
    assert got.matrix[1, col("avg_price_3m")] == 1_200.0  # falls back to the region
    assert got.matrix[1, col("deals_3m")] == 400.0
    assert got.matrix[0, col("price_per_pyeong")] == pytest.approx(1_500.0 * 3.3058)
    assert np.isnan(got.matrix[2]).all()


@pytest.mark.parametrize("value", ["L0000001", "C0102", "41135:삼평동", "", "x" * 300])
def test_entity_keys_are_the_bytes_feast_builds(value: str) -> None:
    for join_key in ("listing_id", "complex_id", "dong_id", "region_code"):
        expected = layout.feast_entity_key("homeloop", join_key, value)
        assert layout.entity_key("homeloop", join_key, value) == expected


def test_a_views_vector_fields_are_named_by_its_feature_list_and_small() -> None:
    names = tuple(f"f{i}" for i in range(9))
    fields = layout.vector_fields("listing_features", names)
    assert fields == layout.vector_fields("listing_features", list(names))
    assert len(fields) == 2 and all(f.startswith(b"_vec:listing_features:") for f in fields)
    # another order is another layout: read as absent, never as the wrong columns
    assert set(fields).isdisjoint(layout.vector_fields("listing_features", names[::-1]))
    row = bytes(range(9 * len(names)))
    pieces = layout.vector_pieces(row)
    assert b"".join(pieces) == row and [len(p) for p in pieces] == [63, 18]
    assert len(layout.vector_fields("engagement_features", names[:6])) == 1
