"""Deal history for training: vectorised, so a million deals take seconds."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from homeloop.market.world import EPOCH, Market


def deal_history(
    market: Market, n_deals: int, start: datetime, end: datetime, seed: int
) -> pd.DataFrame:
    """``n_deals`` deals uniform in [start, end): listing columns, deal_time, price, true_price."""
    if n_deals <= 0 or end <= start:
        raise ValueError("need a positive number of deals and start < end")
    rng = np.random.default_rng(seed)
    idx, area, floor = market.sample_units(n_deals, rng)
    lo, hi = (start - EPOCH).total_seconds(), (end - EPOCH).total_seconds()
    seconds = np.sort(rng.uniform(lo, hi, n_deals))
    true = market.true_prices(idx, area, floor, seconds)
    complexes = market.complexes
    markup = rng.normal(1.03, 0.03, n_deals)
    return pd.DataFrame(
        {
            "listing_id": [f"H{seed % 1000:03d}{i:08d}" for i in range(n_deals)],
            "complex_id": np.array([c.complex_id for c in complexes])[idx],
            "region_code": np.array([c.region_code for c in complexes])[idx],
            "dong": np.array([c.dong for c in complexes])[idx],
            "lat": np.array([c.lat for c in complexes])[idx],
            "lon": np.array([c.lon for c in complexes])[idx],
            "area_sqm": area,
            "floor": floor,
            "build_year": np.array([c.build_year for c in complexes])[idx],
            "asking_price": np.round(true * markup).astype(np.int64),
            "deal_time": pd.to_datetime(EPOCH.timestamp() + seconds, unit="s", utc=True).as_unit(
                "us"
            ),
            "price": market.observe(true, rng),
            "true_price": true,
        }
    )


def lease_history(
    market: Market, n_leases: int, start: datetime, end: datetime, seed: int
) -> pd.DataFrame:
    """``n_leases`` 전세 deals in [start, end): place columns, deal_time, area_sqm, deposit.

    Deposits are 55–70% of the unit's true price, the range the simulator's listings use.
    """
    deals = deal_history(market, n_leases, start, end, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    deposit = deals["true_price"].to_numpy() * rng.uniform(0.55, 0.70, n_leases)
    columns = ["complex_id", "region_code", "dong", "area_sqm", "floor", "deal_time"]
    return deals[columns].assign(deposit=np.round(deposit).astype(np.int64))
