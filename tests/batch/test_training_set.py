"""Training sets from Feast's point-in-time joins: nothing from the future leaks in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from batch.market import run_market_job, write_snapshots
from batch.training_set import training_set
from homeloop.db import connect
from homeloop.features import MODEL_FEATURES, dong_id
from homeloop.featurestore import apply_repo
from homeloop.settings import Settings
from tests.factories import synthetic_deals

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 12:00 in Seoul
AVG = MODEL_FEATURES.index("avg_price_3m")
AREA = MODEL_FEATURES.index("area_sqm")


def rows(times: list[datetime], listing_id: str = "L-1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "listing_id": listing_id,
            "complex_id": "C1",
            "dong_id": dong_id("41135", "정자동"),
            "region_code": "41135",
            "event_timestamp": times,
            "price": 100_000,
        }
    )


def plant_listing_row(settings: Settings, at: datetime, area: float) -> None:
    with connect(settings) as conn:
        conn.execute(
            f'INSERT INTO "{settings.db_schema}".listing_features_log '
            "(event_id, listing_id, event_timestamp, complex_id, area_sqm) "
            "VALUES (gen_random_uuid(), 'L-1', %s, 'C1', %s)",
            (at, area),
        )


def test_a_planted_future_value_never_reaches_an_earlier_row(settings: Settings) -> None:
    apply_repo(settings)
    deals = synthetic_deals(1_500).assign(
        deal_time=lambda d: T0 - timedelta(days=80) + (d["deal_time"] - d["deal_time"].min()) / 30
    )
    run_market_job(
        settings, T0 - timedelta(days=5), T0, deals=deals, leases=None, materialize=False
    )
    # The future: a wild market figure for tomorrow and a wild listing value in an hour.
    tomorrow = pd.Timestamp(T0 + timedelta(days=1)).floor("D")
    planted = pd.DataFrame(
        {
            "complex_id": ["C1"],
            "event_timestamp": [tomorrow],
            "avg_price_3m": [99_999.0],
            "price_change_pct": [np.nan],
            "jeonse_ratio": [np.nan],
            "deals_3m": [50.0],
        }
    )
    write_snapshots(settings, "complex_id", planted)
    plant_listing_row(settings, T0 - timedelta(hours=1), 84.0)
    plant_listing_row(settings, T0 + timedelta(hours=1), 999.0)

    times = [T0 - timedelta(minutes=1), T0, T0 + timedelta(hours=2), tomorrow + timedelta(hours=1)]
    got = training_set(settings, rows(times))
    avg, area = got.features[:, AVG], got.features[:, AREA]
    assert not np.isnan(avg[0]) and avg[0] < 10_000  # a real level from the deals before
    assert avg[0] == avg[1] == avg[2]  # the same day's snapshot, computed before the day
    assert avg[3] == 99_999.0  # once its time has come, the planted value is seen
    assert area.tolist()[:2] == [84.0, 84.0] and area[2] == 999.0
    assert got.times.is_monotonic_increasing and len(got) == 4


def test_bad_training_rows_are_refused_with_the_reason(settings: Settings) -> None:
    apply_repo(settings)
    with pytest.raises(ValueError, match="no training rows"):
        training_set(settings, rows([]))
    with pytest.raises(ValueError, match="lack columns: price"):
        training_set(settings, rows([T0]).drop(columns=["price"]))
    with pytest.raises(ValueError, match="labels must be positive"):
        training_set(settings, rows([T0, T0]).assign(price=[100_000, None]))


def test_feast_point_in_time_equals_the_direct_computation(settings: Settings) -> None:
    """The fast path (from_deals) and Feast's join give the same matrix on the same deals."""
    from batch.dataset import from_deals
    from homeloop.market import Market
    from homeloop.market.history import deal_history, lease_history

    apply_repo(settings)
    market = Market(seed=5)
    since, until = T0 - timedelta(days=200), T0
    deals = deal_history(market, 3_000, since, until, seed=5).drop(columns=["true_price"])
    leases = lease_history(market, 1_500, since, until, seed=5)
    run_market_job(settings, since, until, deals=deals, leases=leases, materialize=False)
    sample = deals.iloc[::10].reset_index(drop=True)  # 300 rows, all over the window
    # from_deals takes the market from the deals it is given: give it all of them.
    full = from_deals(deals, leases)
    wanted = full.times.isin(sample["deal_time"]).to_numpy()
    rows = sample.rename(columns={"deal_time": "event_timestamp"}).drop(columns=["listing_id"])
    joined = training_set(settings, rows)
    assert np.array_equal(joined.features, full.features[wanted], equal_nan=True)
    assert np.isfinite(joined.features[:, AVG]).mean() > 0.5  # the market part is really there
