"""Market price levels as of a moment: the market features, computed point-in-time.

Rules, stated once:
- a window is ``[as_of − 91 days, as_of)``: strictly before ``as_of``, so the deal a row
  is labelled with never describes itself, and nothing from the future leaks in;
- ``avg_price_3m``: mean price per ㎡ (만원) of the deals in the window at the most specific
  level with at least 5 deals: the complex, else its dong, else its region; ``NaN`` if none;
- ``price_change_pct``: that level's mean over the window vs. over the 91 days before it,
  in %; both windows need 5 deals;
- ``jeonse_ratio``: mean 전세 deposit per ㎡ / mean sale price per ㎡ in the window, at the
  first level where both have 5;
- ``price_per_pyeong``: ``avg_price_3m`` per 평 (× 3.3058).
Windows are evaluated with prefix sums over time-sorted deals, so a million rows take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from homeloop.units import SQM_PER_PYEONG

WINDOW = pd.Timedelta(days=91)
MIN_DEALS = 5
LEVELS = ("complex_id", "dong", "region_code")
LEVEL_NAMES = ("complex", "dong", "region")
FEATURES = ("avg_price_3m", "price_change_pct", "jeonse_ratio", "price_per_pyeong", "deals_3m")


@dataclass(frozen=True)
class _Series:
    times: NDArray[np.int64]
    cumsum: NDArray[np.float64]


class WindowIndex:
    """Per key, deals sorted by time with prefix sums: sums and counts over any window."""

    def __init__(self, keys: pd.Series, times: pd.Series, values: pd.Series) -> None:
        frame = pd.DataFrame(
            {"key": keys.astype(str).to_numpy(), "t": _ns(times), "v": values.to_numpy(float)}
        ).sort_values(["key", "t"], kind="stable")
        self._series: dict[str, _Series] = {}
        for key, group in frame.groupby("key", sort=False):
            cumsum = np.concatenate([[0.0], np.cumsum(group["v"].to_numpy())])
            self._series[str(key)] = _Series(group["t"].to_numpy(), cumsum)

    def window(
        self, keys: NDArray[np.str_], start: NDArray[np.int64], end: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Sum and count of values with start <= time < end, for each (key, start, end)."""
        sums = np.zeros(len(keys))
        counts = np.zeros(len(keys), dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        bounds = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1], True])
        for a, b in pairwise(bounds):
            rows = order[a:b]
            series = self._series.get(str(sorted_keys[a]))
            if series is None:
                continue
            lo = np.searchsorted(series.times, start[rows], side="left")
            hi = np.searchsorted(series.times, end[rows], side="left")
            sums[rows] = series.cumsum[hi] - series.cumsum[lo]
            counts[rows] = hi - lo
        return sums, counts


def _ns(times: pd.Series) -> NDArray[np.int64]:
    return pd.to_datetime(times, utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64)


def market_features(
    deals: pd.DataFrame, leases: pd.DataFrame | None, rows: pd.DataFrame
) -> pd.DataFrame:
    """Market features for each row (``complex_id``, ``dong``, ``region_code``, ``as_of``).

    ``deals`` has the three level columns, ``deal_time``, ``price`` and ``area_sqm``;
    ``leases`` the same with ``deposit`` for 전세 deals only (or ``None``).
    """
    end = _ns(rows["as_of"])
    start = end - WINDOW.value
    before = start - WINDOW.value
    out = pd.DataFrame(index=rows.index)
    avg = np.full(len(rows), np.nan)
    count = np.zeros(len(rows), dtype=np.int64)
    change = np.full(len(rows), np.nan)
    ratio = np.full(len(rows), np.nan)
    level_used = np.full(len(rows), None, dtype=object)
    sale_ppsqm = deals["price"] / deals["area_sqm"]
    lease_ppsqm = leases["deposit"] / leases["area_sqm"] if leases is not None else None
    for level, name in zip(LEVELS, LEVEL_NAMES, strict=True):
        keys = rows[level].astype(str).to_numpy()
        sales = WindowIndex(deals[level], deals["deal_time"], sale_ppsqm)
        s_now, n_now = sales.window(keys, start, end)
        s_old, n_old = sales.window(keys, before, start)
        take = np.isnan(avg) & (n_now >= MIN_DEALS)
        avg[take] = s_now[take] / n_now[take]
        count[take] = n_now[take]
        level_used[take] = name
        both = np.isnan(change) & (n_now >= MIN_DEALS) & (n_old >= MIN_DEALS)
        change[both] = (s_now[both] / n_now[both]) / (s_old[both] / n_old[both]) * 100 - 100
        if leases is not None and lease_ppsqm is not None:
            jeonse = WindowIndex(leases[level], leases["deal_time"], lease_ppsqm)
            l_now, m_now = jeonse.window(keys, start, end)
            pair = np.isnan(ratio) & (n_now >= MIN_DEALS) & (m_now >= MIN_DEALS)
            ratio[pair] = (l_now[pair] / m_now[pair]) / (s_now[pair] / n_now[pair])
    out["avg_price_3m"] = avg
    out["price_change_pct"] = change
    out["jeonse_ratio"] = ratio
    out["price_per_pyeong"] = avg * SQM_PER_PYEONG
    out["deals_3m"] = count
    out["market_level"] = level_used
    return out
