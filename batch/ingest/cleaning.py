"""Cleaning a validated batch: cancelled deals out, one row per deal, outliers out, units normal.

Rules, stated once:
- cancelled deals (해제사유발생일 / cdealType) are dropped: they never happened;
- rows sharing a deal identity (region, dong, complex, 지번, area, floor, contract date and
  price or deposit/rent) are one deal: the first is kept;
- outliers: price (or 전세 deposit) per ㎡ outside Tukey fences at 3×IQR of its region in
  the batch, where the region has at least 20 rows;
- areas rounded to 0.01 ㎡; every row gets ``deal_key``, a hash of its identity, which is
  the key of idempotent upserts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pandas as pd

from batch.ingest.validation import DEAL_IDENTITY, LEASE_IDENTITY, Kind, price_per_sqm

OUTLIER_IQR = 3.0
MIN_ROWS_FOR_OUTLIERS = 20


@dataclass
class Cleaned:
    frame: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)


def deal_keys(frame: pd.DataFrame, identity: tuple[str, ...]) -> pd.Series:
    joined = frame[list(identity)].astype(str).agg("|".join, axis=1)
    return joined.map(lambda text: hashlib.sha1(text.encode()).hexdigest())


def _outliers(frame: pd.DataFrame, kind: Kind) -> pd.Series:
    values = price_per_sqm(frame, kind)
    if kind == "rent":
        values = values.where(frame["lease_type"] == "jeonse")
    flags = pd.Series(False, index=frame.index)
    for _, group in values.dropna().groupby(frame["region_code"]):
        if len(group) < MIN_ROWS_FOR_OUTLIERS:
            continue
        q1, q3 = group.quantile([0.25, 0.75])
        spread = OUTLIER_IQR * (q3 - q1)
        flags.loc[group.index] = (group < q1 - spread) | (group > q3 + spread)
    return flags


def clean(frame: pd.DataFrame, kind: Kind) -> Cleaned:
    dropped: dict[str, int] = {}
    out = frame.copy()
    out["area_sqm"] = out["area_sqm"].round(2)
    if kind == "trade":
        cancelled = out["cancelled"].astype(bool)
        dropped["cancelled"] = int(cancelled.sum())
        out = out[~cancelled]
    identity = DEAL_IDENTITY if kind == "trade" else LEASE_IDENTITY
    duplicated = out.duplicated(subset=list(identity))
    dropped["duplicate"] = int(duplicated.sum())
    out = out[~duplicated]
    outliers = _outliers(out, kind)
    dropped["outlier"] = int(outliers.sum())
    out = out[~outliers].copy()
    out["deal_key"] = deal_keys(out, identity)
    return Cleaned(out.reset_index(drop=True), dropped)
