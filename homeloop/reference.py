"""The training reference a model carries: what its inputs and outputs looked like.

The drift monitors compare live windows against it. Per column: quantile bin edges (the
bins of the population stability index), each bin's share, the missing share, and
moments; plus a row sample (kept as Parquet beside it) from which the monitors calibrate
their alarm thresholds by resampling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BINS = 10
SAMPLE_ROWS = 20_000


def column_summary(values: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Quantile bins of the present values (ties merged) and their shares."""
    present = values[~np.isnan(values)]
    summary: dict[str, Any] = {
        "rows": int(values.size),
        "missing_share": float(1 - present.size / values.size) if values.size else 0.0,
    }
    if present.size == 0:
        return {**summary, "edges": [], "shares": [], "mean": None, "std": None}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))
    inner = edges[1:-1]
    counts = np.bincount(np.searchsorted(inner, present, side="right"), minlength=len(inner) + 1)
    return {
        **summary,
        "edges": [float(e) for e in edges],
        "shares": [float(c) for c in counts / present.size],
        "mean": float(present.mean()),
        "std": float(present.std()),
    }


def build_reference(
    frame: pd.DataFrame, *, seed: int = 7, sample_rows: int = SAMPLE_ROWS
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The summary (JSON-able) of every column of ``frame`` and a row sample of it."""
    summary = {
        "columns": list(frame.columns),
        "bins": BINS,
        "summary": {c: column_summary(frame[c].to_numpy(np.float64)) for c in frame.columns},
    }
    sample = frame.sample(n=min(sample_rows, len(frame)), random_state=seed).sort_index()
    return summary, sample.reset_index(drop=True)
