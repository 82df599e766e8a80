"""Event contracts: validation rules and the checked-in JSON Schemas."""

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import jsonschema
import pytest
from pydantic import ValidationError

from homeloop.events import EVENT_TYPES, Event, ListingEvent, PredictionEvent, UserEvent
from homeloop.schemas import event_schemas, stale_schemas
from homeloop.topics import BY_NAME, TOPICS, message_key
from tests.factories import listing_event as listing


def test_every_design_topic_has_an_event_and_a_spec() -> None:
    design = {
        "listings",
        "predictions",
        "user-events",
        "retrain-requests",
        "model-events",
        "alerts",
        "monitoring",
        "dead-letter",
    }
    assert set(EVENT_TYPES) == design
    assert {t.name for t in TOPICS} == design
    for spec in TOPICS:
        assert spec.key in spec.event.model_fields


def test_round_trip_bytes_and_utc() -> None:
    kst = timezone(timedelta(hours=9))
    event = listing(event_time=datetime(2026, 5, 1, 9, 0, tzinfo=kst))
    again = ListingEvent.from_bytes(event.to_bytes())
    assert again == event
    assert again.event_time == datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    assert again.event_time.utcoffset() == timedelta(0)
    assert message_key(event) == b"L1"


@pytest.mark.parametrize(
    ("field", "value"),
    [("region_code", "4113"), ("area_sqm", 0), ("floor", 400), ("build_year", 1800)],
)
def test_listing_rejects_implausible_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        listing(**{field: value})


def test_naive_time_is_rejected() -> None:
    with pytest.raises(ValidationError, match="event_time"):
        listing(event_time=datetime(2026, 5, 1, 9, 0))


def test_contract_needs_price_and_only_contracts_have_one() -> None:
    with pytest.raises(ValidationError, match="contract_price"):
        UserEvent(type="contract", user_id="u", listing_id="L1")
    with pytest.raises(ValidationError, match="only for contracts"):
        UserEvent(type="click", user_id="u", listing_id="L1", contract_price=1)
    assert UserEvent(type="contract", user_id="u", listing_id="L1", contract_price=90_000)


def test_checked_in_schemas_match_the_models() -> None:
    assert stale_schemas() == [], "run `homeloop schemas` and commit the result"


def test_schemas_accept_real_events_and_refuse_bad_ones() -> None:
    schemas = event_schemas()
    good = json.loads(listing().to_bytes())
    jsonschema.validate(good, schemas["listings.schema.json"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "region_code": "x"}, schemas["listings.schema.json"])
    prediction = PredictionEvent(
        prediction_id=uuid4(),
        listing_id="L1",
        predicted_price=1,
        model_name="m",
        model_version="1",
        features={"area_sqm": 84.9, "lat": None},
        latency_ms=1.0,
    )
    jsonschema.validate(json.loads(prediction.to_bytes()), schemas["predictions.schema.json"])
    assert BY_NAME["predictions"].event is PredictionEvent


def test_listing_attributes_are_the_events_own_fields() -> None:
    from homeloop.events import LISTING_ATTRIBUTES

    base = set(Event.model_fields)
    assert set(LISTING_ATTRIBUTES) == set(ListingEvent.model_fields) - base - {"source"}
