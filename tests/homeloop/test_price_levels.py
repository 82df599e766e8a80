"""Market features point-in-time: no leakage, level fallback, change and jeonse ratio."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from homeloop.price_levels import MIN_DEALS, MIN_DEALS_RATIO, market_features
from homeloop.units import SQM_PER_PYEONG

T0 = pd.Timestamp("2026-06-01", tz="UTC")


def deal(
    complex_id: str, days_before: float, ppsqm: float, dong: str = "정자동", region: str = "41135"
) -> dict:
    return {
        "complex_id": complex_id, "dong": dong, "region_code": region,
        "deal_time": T0 - pd.Timedelta(days=days_before), "price": ppsqm * 100.0, "area_sqm": 100.0,
    }  # fmt: skip


def row(
    complex_id: str = "C1", dong: str = "정자동", region: str = "41135", as_of: pd.Timestamp = T0
) -> dict:
    return {"complex_id": complex_id, "dong": dong, "region_code": region, "as_of": as_of}


def test_complex_level_and_no_leakage_from_the_labelled_deal_or_the_future() -> None:
    deals = pd.DataFrame(
        [deal("C1", d, 1_000.0) for d in (10, 20, 30, 40, 50)]
        + [deal("C1", 0, 99_999.0)]  # the deal being predicted, at as_of exactly
        + [deal("C1", -5, 99_999.0)]  # a future deal
        + [deal("C1", 200, 99_999.0)]  # too old for the window
    )
    out = market_features(deals, None, pd.DataFrame([row()]))
    assert out.loc[0, "avg_price_3m"] == pytest.approx(1_000.0)
    assert out.loc[0, "deals_3m"] == 5 and out.loc[0, "market_level"] == "complex"
    assert out.loc[0, "price_per_pyeong"] == pytest.approx(1_000.0 * SQM_PER_PYEONG)


def test_falls_back_from_complex_to_dong_to_region() -> None:
    deals = pd.DataFrame(
        [deal("C1", 100, 2_000.0)]  # none in the complex's window
        + [deal(f"D{i}", 10 + i, 1_500.0) for i in range(5)]  # enough in the dong
        + [deal(f"R{i}", 10 + i, 900.0, dong="수내동") for i in range(5)]
    )
    rows = pd.DataFrame([row(), row("C9", dong="서현동")])
    out = market_features(deals, None, rows)
    assert out.loc[0, "market_level"] == "dong"
    assert out.loc[0, "avg_price_3m"] == pytest.approx(1_500)
    assert out.loc[1, "market_level"] == "region"
    assert out.loc[1, "avg_price_3m"] == pytest.approx((5 * 1_500 + 5 * 900) / 10)
    one = market_features(deals, None, pd.DataFrame([row(as_of=T0 - pd.Timedelta(days=30))]))
    assert one.loc[0, "market_level"] == "complex" and one.loc[0, "deals_3m"] == MIN_DEALS
    empty = market_features(deals, None, pd.DataFrame([row("X", "Y", "11110")]))
    assert np.isnan(empty.loc[0, "avg_price_3m"]) and empty.loc[0, "market_level"] is None


def test_price_change_and_jeonse_ratio() -> None:
    deals = pd.DataFrame(
        [deal("C1", d, 1_100.0) for d in (5, 15, 25, 35, 45)]
        + [deal("C1", d, 1_000.0) for d in (100, 110, 120, 130, 140)]
    )
    leases = pd.DataFrame([deal("C1", d, 660.0) for d in (5, 6, 7, 8, 9)]).rename(
        columns={"price": "deposit"}
    )
    out = market_features(deals, leases, pd.DataFrame([row()]))
    assert out.loc[0, "price_change_pct"] == pytest.approx(10.0)
    assert out.loc[0, "jeonse_ratio"] == pytest.approx(0.6)
    # A change or ratio over too few deals is left missing rather than guessed.
    thin = market_features(deals.iloc[1:], leases.iloc[1:], pd.DataFrame([row()]))
    assert thin.loc[0, "deals_3m"] == MIN_DEALS_RATIO - 1
    assert np.isnan(thin.loc[0, "price_change_pct"]) and np.isnan(thin.loc[0, "jeonse_ratio"])


def test_many_rows_match_one_by_one() -> None:
    rng = np.random.default_rng(0)
    deals = pd.DataFrame(
        [
            deal(f"C{rng.integers(5)}", float(rng.uniform(0, 300)), float(rng.uniform(800, 1_500)))
            for _ in range(400)
        ]
    )
    rows = pd.DataFrame(
        [
            row(f"C{i % 5}", as_of=T0 - pd.Timedelta(days=int(d)))
            for i, d in enumerate(rng.uniform(0, 200, 60))
        ]
    )
    together = market_features(deals, None, rows)
    for i in range(len(rows)):
        alone = market_features(deals, None, rows.iloc[[i]].reset_index(drop=True))
        assert alone.loc[0, "avg_price_3m"] == pytest.approx(
            together.loc[i, "avg_price_3m"], nan_ok=True
        )
