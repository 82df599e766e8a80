"""Training sets: deal rows turned into the model's feature matrix, time-ordered."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from homeloop.events import LISTING_ATTRIBUTES
from homeloop.features import MARKET_FEATURES, MODEL_FEATURES, listing_feature_columns
from homeloop.price_levels import day_start, market_features

# A deal history carries the listing's attributes except what only a live listing has.
LISTING_COLUMNS = tuple(c for c in LISTING_ATTRIBUTES if c not in ("jeonse_price", "status"))


@dataclass(frozen=True)
class TrainingSet:
    """Features in model column order, labels in 만원, and when each deal happened; ``rows``
    are the labelled rows themselves (place and attributes), in the same order."""

    features: np.ndarray
    labels: np.ndarray
    times: pd.Series
    columns: tuple[str, ...] = MODEL_FEATURES
    rows: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, keep: np.ndarray) -> TrainingSet:
        """The rows where ``keep`` is true, order kept."""
        return TrainingSet(
            self.features[keep],
            self.labels[keep],
            self.times[keep].reset_index(drop=True),
            self.columns,
            None if self.rows is None else self.rows[keep].reset_index(drop=True),
        )


def from_deals(
    deals: pd.DataFrame, leases: pd.DataFrame | None = None, *, daily: bool = True
) -> TrainingSet:
    """Features for each deal without the feature store: the same formulas, computed here.

    Listing features from the deal's own attributes (as the agent computes them for a
    listing event), market features from the other deals strictly before each one
    (:func:`homeloop.price_levels.market_features`), engagement missing. For training
    from the store, point-in-time, see :mod:`batch.training_set`.
    ``deals`` has the listing columns, ``deal_time`` (UTC) and ``price`` (만원).
    """
    missing = [c for c in (*LISTING_COLUMNS, "deal_time", "price") if c not in deals.columns]
    if missing:
        raise ValueError(f"deal history lacks columns: {', '.join(missing)}")
    if deals.empty:
        raise ValueError("deal history is empty: nothing to train on")
    ordered = deals.sort_values("deal_time", kind="stable").reset_index(drop=True)
    features = pd.DataFrame(index=ordered.index, columns=list(MODEL_FEATURES), dtype=np.float64)
    listing, _ = listing_feature_columns(ordered, ordered["deal_time"])
    for name, values in listing.items():
        features[name] = values
    as_of = day_start(ordered["deal_time"]) if daily else ordered["deal_time"]
    market = market_features(ordered, leases, ordered.assign(as_of=as_of))
    for name in MARKET_FEATURES:
        features[name] = market[name].to_numpy(np.float64)
    return TrainingSet(
        features=features.to_numpy(np.float64),
        labels=ordered["price"].to_numpy(dtype=np.float64),
        times=ordered["deal_time"],
        rows=ordered.drop(columns=["price"]),
    )


def combine(first: TrainingSet, second: TrainingSet) -> TrainingSet:
    """Two sets as one, time-ordered (deals from the market and the platform's contracts)."""
    if first.columns != second.columns:
        raise ValueError("training sets with different columns cannot be combined")
    times = pd.concat([first.times, second.times], ignore_index=True)
    order = np.argsort(times.to_numpy(), kind="stable")
    rows = None
    if first.rows is not None and second.rows is not None:
        rows = pd.concat([first.rows, second.rows], ignore_index=True).iloc[order]
    return TrainingSet(
        np.vstack([first.features, second.features])[order],
        np.concatenate([first.labels, second.labels])[order],
        times.iloc[order].reset_index(drop=True),
        first.columns,
        None if rows is None else rows.reset_index(drop=True),
    )


def time_split(n: int, fractions: tuple[float, ...] = (0.7, 0.15, 0.15)) -> list[slice]:
    """Consecutive slices of a time-ordered set: never random, a random split leaks the future."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    bounds = np.floor(np.cumsum((0.0, *fractions)) * n).astype(int)
    bounds[-1] = n
    return [slice(int(a), int(b)) for a, b in pairwise(bounds)]
