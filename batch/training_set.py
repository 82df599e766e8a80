"""Training sets from the feature store, point-in-time correct (Feast's historical joins).

Input: labelled rows, each an entity at a moment (``event_timestamp``) with its label
(``price``, 만원): deals from MOLIT or the simulator, and later the platform's own
contracts. Every view of the ``price_model_v1`` service is joined as of the row's time,
so no row sees a value written after it (a test plants one). The listing's own features
come from the row's attributes when it carries them (a MOLIT deal has no listing id;
computed by the same formulas as the agent's), else from the listing view. The market
fallback is :func:`homeloop.price_levels.resolve`, as in serving.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from batch.dataset import TrainingSet
from homeloop.features import (
    ENGAGEMENT_FEATURES,
    LISTING_FEATURES,
    MODEL_FEATURES,
    dong_id,
    listing_feature_columns,
)
from homeloop.featurestore import ENGAGEMENT_VIEW, FEATURE_SERVICE, LISTING_VIEW, MARKET_VIEWS
from homeloop.price_levels import LEVEL_FEATURES, resolve
from homeloop.settings import Settings

ATTRIBUTES = ("area_sqm", "floor", "build_year", "lat", "lon", "asking_price")
REQUIRED = ("event_timestamp", "price", "complex_id", "region_code")


def entity_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The entity frame Feast joins on: every view's join key and the row's time."""
    missing = [c for c in REQUIRED if c not in rows.columns]
    if "dong_id" not in rows.columns and "dong" not in rows.columns:
        missing.append("dong or dong_id")
    if missing:
        raise ValueError(f"training rows lack columns: {', '.join(missing)}")
    if rows.empty:
        raise ValueError("no training rows: nothing to train on")
    frame = pd.DataFrame(
        {
            "row": np.arange(len(rows)),
            "listing_id": rows["listing_id"].astype(str).to_numpy()
            if "listing_id" in rows.columns
            else "",
            "complex_id": rows["complex_id"].astype(str).to_numpy(),
            "dong_id": rows["dong_id"].astype(str).to_numpy()
            if "dong_id" in rows.columns
            else [dong_id(r, d) for r, d in zip(rows["region_code"], rows["dong"], strict=True)],
            "region_code": rows["region_code"].astype(str).to_numpy(),
            "event_timestamp": pd.to_datetime(rows["event_timestamp"], utc=True).to_numpy(),
        }
    )
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def point_in_time(settings: Settings, entities: pd.DataFrame) -> pd.DataFrame:
    """Every feature of the service as of each row's time, back in the rows' order."""
    from homeloop.featurestore import feature_store

    store = feature_store(settings)
    job = store.get_historical_features(
        entity_df=entities,
        features=store.get_feature_service(FEATURE_SERVICE),
        full_feature_names=True,
    )
    return job.to_df().sort_values("row").reset_index(drop=True)


def assemble(rows: pd.DataFrame, joined: pd.DataFrame) -> pd.DataFrame:
    """The model's columns from the joined views and the rows' own attributes (pure)."""
    n = len(rows)
    out = pd.DataFrame(index=range(n), columns=list(MODEL_FEATURES), dtype=np.float64)
    for name in LISTING_FEATURES:
        out[name] = joined[f"{LISTING_VIEW}__{name}"].to_numpy(np.float64, na_value=np.nan)
    if all(a in rows.columns for a in ATTRIBUTES[:3]):
        given = rows.reset_index(drop=True)
        attrs = {a: given[a] if a in given.columns else [None] * n for a in ATTRIBUTES}
        computed, _ = listing_feature_columns(attrs, given["event_timestamp"])
        has = given["area_sqm"].notna().to_numpy()
        for name in LISTING_FEATURES:
            out.loc[has, name] = computed[name][has]
    levels = [
        {
            name: joined[f"{view}__{name}"].to_numpy(np.float64, na_value=np.nan)
            for name in LEVEL_FEATURES
        }
        for view in MARKET_VIEWS
    ]
    resolved, _ = resolve(levels)
    for name, values in resolved.items():
        out[name] = values
    for name in ENGAGEMENT_FEATURES:
        out[name] = joined[f"{ENGAGEMENT_VIEW}__{name}"].to_numpy(np.float64, na_value=np.nan)
    return out


def training_set(settings: Settings, rows: pd.DataFrame) -> TrainingSet:
    """A time-ordered :class:`TrainingSet` for labelled rows, features as of each row."""
    ordered = rows.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    labels = ordered["price"].to_numpy(np.float64) if "price" in ordered.columns else None
    if labels is not None and (np.isnan(labels).any() or (labels <= 0).any()):
        raise ValueError("labels must be positive prices in 만원, without nulls")
    entities = entity_rows(ordered)
    joined = point_in_time(settings, entities)
    features = assemble(ordered, joined)
    return TrainingSet(
        features=features.to_numpy(np.float64),
        labels=ordered["price"].to_numpy(np.float64),
        times=pd.to_datetime(ordered["event_timestamp"], utc=True),
        columns=MODEL_FEATURES,
        rows=ordered.drop(columns=["price"]).rename(columns={"event_timestamp": "deal_time"}),
    )
