"""Response bodies and events built column-wise, and the metrics helper: pure, no services."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, Histogram

from homeloop.events import PredictionEvent
from homeloop.features import MODEL_FEATURES
from homeloop.model_store import ErrorBand
from homeloop.price_model import PriceModel, TargetSpec
from serving.answers import Priced, bodies, events, uuid4_strings
from serving.metrics import observe_many
from serving.model_slots import LoadedModel
from serving.predictor import NO_LEVEL
from serving.schemas import ListingAttributes, PredictionRequest

MODEL = LoadedModel(
    "homeloop-price",
    "7",
    PriceModel("lightgbm", None, MODEL_FEATURES, TargetSpec()),
    ErrorBand(low=-0.125, high=0.0875),
)
LISTING = ListingAttributes(
    complex_id="C1", region_code="41135", dong="정자동", area_sqm=84.9, floor=9, build_year=2004
)


def priced() -> Priced:
    rows = np.arange(3 * len(MODEL_FEATURES), dtype=np.float64).reshape(3, -1)
    rows[1, 3] = np.nan
    return Priced(
        model=MODEL,
        requests=[
            PredictionRequest(listing_id="A-0", user_id="U1"),
            PredictionRequest(listing=LISTING),
            PredictionRequest(listing_id="A-2"),
        ],
        rows=rows,
        prices=[80_000, 123_457, 99_999],
        updated_at_us=np.array([1.7e15, np.nan, 1.7e15 + 5e5]),
        degraded=[[], [NO_LEVEL], []],
        latency_ms=1.25,
        prediction_ids=uuid4_strings(3),
        at=datetime.now(UTC),
    )


def test_uuid4_strings_are_distinct_version_4_uuids_in_text_form() -> None:
    ids = uuid4_strings(500)
    parsed = [uuid.UUID(i) for i in ids]
    assert len(set(ids)) == 500
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == ids


def test_events_are_prediction_events_with_nan_features_as_null() -> None:
    answered = priced()
    records = events(answered)
    assert [key for key, _ in records][0::2] == [b"A-0", b"A-2"]
    decoded = [PredictionEvent.from_bytes(value) for _, value in records]
    assert [str(e.prediction_id) for e in decoded] == answered.prediction_ids
    assert [e.predicted_price for e in decoded] == answered.prices
    assert decoded[0].user_id == "U1" and decoded[0].model_version == "7"
    assert decoded[1].listing_id == f"adhoc-{answered.prediction_ids[1]}"
    assert records[1][0] == decoded[1].listing_id.encode()
    assert decoded[1].features[MODEL_FEATURES[3]] is None
    assert decoded[2].features[MODEL_FEATURES[4]] == answered.rows[2, 4]
    assert len({e.event_id for e in decoded}) == 3
    assert all(e.event_time == answered.at for e in decoded)  # the event clock's time


def test_bodies_match_the_row_by_row_formulas() -> None:
    answered = priced()
    out = bodies(answered)
    assert [b["prediction_id"] for b in out] == answered.prediction_ids
    assert [b["listing_id"] for b in out] == ["A-0", None, "A-2"]
    band = MODEL.band
    assert band is not None
    for body, price in zip(out, answered.prices, strict=True):
        assert body["interval"] == {
            "low": round(price * (1 + band.low)),
            "high": round(price * (1 + band.high)),
            "level": band.level,
        }
    assert out[1]["features_updated_at"] is None and out[1]["feature_age_s"] is None
    assert out[1]["degraded"] is True and out[1]["degraded_reasons"] == [NO_LEVEL]
    assert out[0]["features_updated_at"].timestamp() == 1.7e9
    assert out[0]["feature_age_s"] > 0 and out[0]["degraded"] is False
    assert orjson.loads(orjson.dumps(out))[2]["latency_ms"] == 1.25


def test_observe_many_equals_one_observe_per_value() -> None:
    buckets = (10.0, 20.0, 40.0)
    one, many = CollectorRegistry(), CollectorRegistry()
    by_one = Histogram("h", "h", buckets=buckets, registry=one)
    by_many = Histogram("h", "h", buckets=buckets, registry=many)
    for values in ([5.0, 10.0, 10.5, 20.0, 39.0, 40.0, 41.0, 1e9], [15.0], []):
        for value in values:
            by_one.observe(value)
        observe_many(by_many, values)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for metric in registry.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    expected, got = samples(one), samples(many)
    assert expected.keys() == got.keys()
    assert all(math.isclose(expected[k], got[k]) for k in expected)
