"""Training sets: deal rows turned into the model's feature matrix, time-ordered."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from homeloop.events import LISTING_ATTRIBUTES, ListingEvent
from homeloop.features import MODEL_FEATURES, feature_vector, listing_features

# A deal history carries the listing's attributes except what only a live listing has.
LISTING_COLUMNS = tuple(c for c in LISTING_ATTRIBUTES if c not in ("jeonse_price", "status"))


@dataclass(frozen=True)
class TrainingSet:
    """Features in model column order, labels in 만원, and when each deal happened."""

    features: np.ndarray
    labels: np.ndarray
    times: pd.Series
    columns: tuple[str, ...] = MODEL_FEATURES

    def __len__(self) -> int:
        return len(self.labels)


def from_deals(deals: pd.DataFrame) -> TrainingSet:
    """Compute features for each deal exactly as the stream agent does for a listing event.

    ``deals`` has the listing columns, ``deal_time`` (UTC) and ``price`` (만원).
    """
    missing = [c for c in (*LISTING_COLUMNS, "deal_time", "price") if c not in deals.columns]
    if missing:
        raise ValueError(f"deal history lacks columns: {', '.join(missing)}")
    if deals.empty:
        raise ValueError("deal history is empty: nothing to train on")
    ordered = deals.sort_values("deal_time", kind="stable").reset_index(drop=True)
    rows = []
    for record in ordered[[*LISTING_COLUMNS, "deal_time"]].to_dict("records"):
        event = ListingEvent(
            event_time=record.pop("deal_time"),
            **{k: (None if pd.isna(v) else v) for k, v in record.items()},
        )
        rows.append(feature_vector(listing_features(event)))
    return TrainingSet(
        features=np.asarray(rows, dtype=np.float64),
        labels=ordered["price"].to_numpy(dtype=np.float64),
        times=ordered["deal_time"],
    )


def time_split(n: int, fractions: tuple[float, ...] = (0.7, 0.15, 0.15)) -> list[slice]:
    """Consecutive slices of a time-ordered set: never random, a random split leaks the future."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    bounds = np.floor(np.cumsum((0.0, *fractions)) * n).astype(int)
    bounds[-1] = n
    return [slice(int(a), int(b)) for a, b in pairwise(bounds)]
