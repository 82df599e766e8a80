"""Behavioural tests of a trained model (as Made-With-ML does): invariances and directions
that any sound price model keeps, checked on the test window before it may register.

- **bigger flat, not cheaper**: the same row with 10% more area (same complex, floor and
  market) is not predicted more than 1% cheaper;
- **listing id is not a feature**: recomputing the listing features under other listing ids
  changes no prediction (and no identifier is among the model's columns);
- **within the validation range**: every prediction is finite and within the range of
  prices seen in validation, widened by a fifth on each side (trees cannot extrapolate, so
  a prediction outside it means a broken target or an input bug).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from homeloop.features import LISTING_FEATURES, listing_feature_columns
from homeloop.price_model import AREA, PriceModel

AREA_STEP = 1.10
CHEAPER_TOLERANCE = 0.01
RANGE_MARGIN = 0.2
IDENTIFIERS = ("listing_id", "complex_id", "dong_id", "region_code", "user_id", "prediction_id")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def bigger_flat_not_cheaper(model: PriceModel, x: np.ndarray) -> Check:
    bigger = x.copy()
    bigger[:, model.features.index(AREA)] *= AREA_STEP
    base, more = model.predict(x), model.predict(bigger)
    cheaper = more < base * (1 - CHEAPER_TOLERANCE)
    worst = float(np.nanmin(more / base - 1) * 100) if len(x) else 0.0
    return Check(
        "bigger_flat_not_cheaper",
        not bool(cheaper.any()),
        f"{int(cheaper.sum())} of {len(x)} rows predicted >{CHEAPER_TOLERANCE:.0%} cheaper "
        f"with {AREA_STEP - 1:.0%} more area (worst change {worst:+.2f}%)",
    )


def listing_id_is_not_a_feature(model: PriceModel, x: np.ndarray, rows: pd.DataFrame) -> Check:
    named = [c for c in model.features if c in IDENTIFIERS]
    if named:
        return Check("listing_id_is_not_a_feature", False, f"identifiers among features: {named}")
    rows = rows.reset_index(drop=True)
    renamed = rows.assign(listing_id=[f"renamed-{i}" for i in range(len(rows))])
    predictions = []
    for attrs in (rows, renamed):
        computed, _ = listing_feature_columns(attrs, attrs["deal_time"])
        matrix = x.copy()
        for name in LISTING_FEATURES:
            if name in model.features:
                matrix[:, model.features.index(name)] = computed[name]
        predictions.append(model.predict(matrix))
    changed = ~np.isclose(predictions[0], predictions[1], rtol=0, atol=0, equal_nan=True)
    return Check(
        "listing_id_is_not_a_feature",
        not bool(changed.any()),
        f"{int(changed.sum())} of {len(rows)} predictions changed under other listing ids",
    )


def within_validation_range(model: PriceModel, x: np.ndarray, y_val: np.ndarray) -> Check:
    predicted = model.predict(x)
    lo, hi = float(y_val.min()) * (1 - RANGE_MARGIN), float(y_val.max()) * (1 + RANGE_MARGIN)
    outside = ~np.isfinite(predicted) | (predicted < lo) | (predicted > hi)
    return Check(
        "within_validation_range",
        not bool(outside.any()),
        f"{int(outside.sum())} of {len(x)} predictions outside [{lo:,.0f}, {hi:,.0f}]만원 "
        f"(min {np.nanmin(predicted):,.0f}, max {np.nanmax(predicted):,.0f})",
    )


def behaviour_checks(
    model: PriceModel, x_test: np.ndarray, rows_test: pd.DataFrame | None, y_val: np.ndarray
) -> list[Check]:
    checks = [bigger_flat_not_cheaper(model, x_test)]
    if rows_test is not None:
        checks.append(listing_id_is_not_a_feature(model, x_test, rows_test))
    checks.append(within_validation_range(model, x_test, y_val))
    return checks
