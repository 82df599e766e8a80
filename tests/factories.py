"""Event factories shared by the tests: a valid event, with only what a test cares about changed."""

from __future__ import annotations

from homeloop.events import ListingEvent


def listing_event(listing_id: str = "L1", **overrides: object) -> ListingEvent:
    """A plausible 분당 listing; ``overrides`` replace any field."""
    fields: dict[str, object] = dict(
        listing_id=listing_id,
        complex_id="C1",
        region_code="41135",
        dong="정자동",
        lat=37.361,
        lon=127.112,
        area_sqm=84.97,
        floor=11,
        build_year=2004,
        asking_price=121_000,
    )
    fields.update(overrides)
    return ListingEvent.model_validate(fields)
