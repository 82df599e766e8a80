"""The naive baseline a model must beat on real data: the median price per ㎡ of the same
complex over the previous 3 months, times the flat's area (NaN where the complex had no
deal in those 3 months)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from homeloop.price_levels import WINDOW


def naive_prices(history: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """For each row (``complex_id``, ``deal_time``, ``area_sqm``), the median price per ㎡
    of ``history`` deals of its complex in [deal_time − 3 months, deal_time) × area."""
    per_sqm = (history["price"] / history["area_sqm"]).to_numpy(np.float64)
    times = history["deal_time"].to_numpy("datetime64[ns]")
    groups = {}
    for key, idx in history.groupby("complex_id", sort=False).indices.items():
        order = idx[np.argsort(times[idx], kind="stable")]
        groups[key] = (times[order], per_sqm[order])
    out = np.full(len(rows), np.nan)
    at = rows["deal_time"].to_numpy("datetime64[ns]")
    window = np.timedelta64(WINDOW.value, "ns")
    for i, (key, t, area) in enumerate(zip(rows["complex_id"], at, rows["area_sqm"], strict=True)):
        if key not in groups:
            continue
        g_times, g_values = groups[key]
        lo, hi = np.searchsorted(g_times, [t - window, t], side="left")
        if hi > lo:
            out[i] = float(np.median(g_values[lo:hi])) * float(area)
    return out


def against_naive(
    rows: pd.DataFrame, labels: np.ndarray, predicted: np.ndarray, part: slice
) -> dict[str, float]:
    """The model's and the naive baseline's MAE and MAPE on the rows of ``part`` the
    baseline covers (a complex with a deal in the previous 3 months), and that coverage.
    ``rows`` and ``labels`` are the whole time-ordered set: the baseline looks back."""
    history = rows.assign(price=labels)
    naive = naive_prices(history, rows.iloc[part])
    truth, model = labels[part], predicted
    covered = ~np.isnan(naive)
    if not covered.any():
        raise ValueError("the naive baseline covers none of the rows")
    t, m, n = truth[covered], model[covered], naive[covered]
    return {
        "coverage": float(covered.mean()),
        "rows": int(covered.sum()),
        "model_mae": float(np.mean(np.abs(m - t))),
        "model_mape": float(np.mean(np.abs(m - t) / t) * 100),
        "naive_mae": float(np.mean(np.abs(n - t))),
        "naive_mape": float(np.mean(np.abs(n - t) / t) * 100),
    }
