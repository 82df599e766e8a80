"""Evaluating a fitted model on a window: overall figures and where the error sits.

Metrics are in 만원 (MAPE in %). Segments: each region (시군구 code) and fixed price
bands, so an error that hides in one market or one price range shows up by name.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd

from homeloop.metrics import regression_metrics

# Price bands in 만원: under 5억, 5–10억, 10–15억, 15–20억, 20억 and over.
PRICE_BANDS = (0, 50_000, 100_000, 150_000, 200_000, np.inf)


def band_name(lo: float, hi: float) -> str:
    return f"{int(lo)}-{int(hi)}" if np.isfinite(hi) else f"{int(lo)}-up"


def segment_table(
    y_true: np.ndarray, y_pred: np.ndarray, regions: pd.Series | np.ndarray
) -> pd.DataFrame:
    """MAE, MAPE and row count per region and per price band (of the true price)."""
    err = np.abs(y_pred - y_true)
    frame = pd.DataFrame({"err": err, "pct": err / y_true * 100.0})
    frame["region"] = np.asarray(regions, dtype=str)
    frame["band"] = pd.cut(
        y_true,
        PRICE_BANDS,
        right=False,
        labels=[band_name(a, b) for a, b in pairwise(PRICE_BANDS)],
    ).astype(str)
    rows = []
    for kind, column in (("region", "region"), ("band", "band")):
        for key, group in frame.groupby(column, sort=True):
            rows.append(
                {
                    "segment": kind,
                    "key": str(key),
                    "rows": len(group),
                    "mae": float(group["err"].mean()),
                    "mape": float(group["pct"].mean()),
                }
            )
    return pd.DataFrame(rows, columns=["segment", "key", "rows", "mae", "mape"])


def evaluate(
    y_true: np.ndarray, y_pred: np.ndarray, regions: pd.Series | np.ndarray, prefix: str
) -> tuple[dict[str, float], pd.DataFrame]:
    """``{prefix}_mae`` … and ``{prefix}_mae_region_<code>`` / ``_mae_band_<lo>-<hi>`` (만원)."""
    if np.isnan(y_pred).any():
        raise ValueError(f"{int(np.isnan(y_pred).sum())} predictions are NaN (rows without area?)")
    metrics = {f"{prefix}_{k}": v for k, v in regression_metrics(y_true, y_pred).items()}
    table = segment_table(y_true, y_pred, regions)
    for row in table.itertuples():
        metrics[f"{prefix}_mae_{row.segment}_{row.key}"] = row.mae
    return metrics, table
