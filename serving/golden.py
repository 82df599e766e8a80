"""The golden request set: a model must answer it sensibly before it may take traffic.

A fixed grid of plausible flats (small to large, low to high floors, old and new, thin and
busy markets across the price range of 성남) run through the same feature code as a real
request. A model passes when it can be fed (every column it needs is one serving
builds), and every answer is a finite price inside the range a deal can have
(1,000–500,000만원, the ingestion range) and the same when asked twice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from homeloop.features import MODEL_FEATURES, listing_feature_columns
from homeloop.price_model import PriceModel
from homeloop.units import SQM_PER_PYEONG

PRICE_RANGE = (1_000.0, 500_000.0)


def golden_rows() -> np.ndarray:
    """The set, in :data:`MODEL_FEATURES` order (24 rows)."""
    grid = list(itertools.product((39.0, 84.9, 134.0), (1, 12), (1995, 2018), (900.0, 2_400.0)))
    attrs = pd.DataFrame(
        {
            "area_sqm": [g[0] for g in grid],
            "floor": [g[1] for g in grid],
            "build_year": [g[2] for g in grid],
            "lat": [37.38] * len(grid),
            "lon": [127.12] * len(grid),
            "asking_price": [g[0] * g[3] * 1.03 for g in grid],
        }
    )
    at = pd.Series([pd.Timestamp("2026-06-01", tz="UTC")] * len(grid))
    listing, _ = listing_feature_columns(attrs, at)
    rows = pd.DataFrame(np.nan, index=range(len(grid)), columns=list(MODEL_FEATURES))
    for name, values in listing.items():
        rows[name] = values
    level = np.array([g[3] for g in grid])
    rows["avg_price_3m"] = level
    rows["price_per_pyeong"] = level * SQM_PER_PYEONG
    rows["price_change_pct"] = 1.5
    rows["jeonse_ratio"] = 0.55
    rows["deals_3m"] = [3.0, 40.0] * (len(grid) // 2)
    for name in ("clicks_1h", "clicks_24h", "clicks_7d"):
        rows[name] = 0.0
    return rows.to_numpy(np.float64)


@dataclass(frozen=True)
class GoldenResult:
    passed: bool
    detail: str


def check(model: PriceModel, rows: np.ndarray | None = None) -> GoldenResult:
    unknown = [f for f in model.features if f not in MODEL_FEATURES]
    if unknown:
        return GoldenResult(False, f"needs features serving does not build: {unknown}")
    full = golden_rows() if rows is None else rows
    x = full[:, [MODEL_FEATURES.index(f) for f in model.features]]
    first, second = model.predict(x), model.predict(x)
    lo, hi = PRICE_RANGE
    bad = ~np.isfinite(first) | (first < lo) | (first > hi)
    if bad.any():
        return GoldenResult(
            False, f"{int(bad.sum())} of {len(x)} golden answers outside {lo:,.0f}–{hi:,.0f}만원"
        )
    if not np.array_equal(first, second):
        return GoldenResult(False, "the same golden request got two different answers")
    return GoldenResult(
        True, f"{len(x)} golden answers in {first.min():,.0f}–{first.max():,.0f}만원"
    )
