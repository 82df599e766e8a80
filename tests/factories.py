"""Event factories shared by the tests: a valid event, with only what a test cares about changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

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


def synthetic_deals(n: int = 3_000, seed: int = 0) -> pd.DataFrame:
    """A small deal history with a learnable price (area and floor matter)."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    area = rng.uniform(40, 130, n)
    floor = rng.integers(1, 25, n)
    price = area * 1_400 * (1 + 0.01 * floor) * np.exp(rng.normal(0, 0.03, n))
    return pd.DataFrame(
        {
            "listing_id": [f"H{i}" for i in range(n)],
            "complex_id": "C1",
            "region_code": "41135",
            "dong": "정자동",
            "lat": 37.36 + rng.normal(0, 0.01, n),
            "lon": 127.11 + rng.normal(0, 0.01, n),
            "area_sqm": area,
            "floor": floor,
            "build_year": rng.integers(1990, 2020, n),
            "asking_price": np.round(price * 1.03).astype(int),
            "deal_time": [start + timedelta(hours=3 * i) for i in range(n)],
            "price": np.round(price).astype(int),
        }
    )
