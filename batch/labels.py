"""Labelled rows for training: real deals in the columns :func:`batch.dataset.from_deals` takes.

MOLIT deals carry no listing id, coordinates or asking price: those features stay missing
(the boosters handle missing values natively). A complex is identified as the market job
identifies it: ``complex_key`` (aptSeq) where the source has one, else
``region_code:dong:complex_name``. Contract dates become midnight Seoul time, the start of
the day the deal was signed.
"""

from __future__ import annotations

import pandas as pd
from psycopg import sql

from batch.ingest.cleaning import clean
from homeloop.db import connect
from homeloop.price_levels import SNAPSHOT_TZ
from homeloop.settings import Settings

PLACE = ("region_code", "dong", "complex_name", "complex_key", "area_sqm", "floor", "build_year")


def complex_ids(frame: pd.DataFrame) -> pd.Series:
    fallback = frame["region_code"] + ":" + frame["dong"] + ":" + frame["complex_name"]
    return frame["complex_key"].where(frame["complex_key"].notna(), fallback).astype(str)


def _contract_times(dates: pd.Series) -> pd.Series:
    local = pd.to_datetime(dates).dt.tz_localize(SNAPSHOT_TZ)
    return local.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def deal_rows(deals: pd.DataFrame) -> pd.DataFrame:
    """Training rows from deals in the ingestion columns (as parsed and cleaned)."""
    out = pd.DataFrame(
        {
            "listing_id": "",
            "complex_id": complex_ids(deals),
            "region_code": deals["region_code"].astype(str),
            "dong": deals["dong"].astype(str),
            "lat": float("nan"),
            "lon": float("nan"),
            "area_sqm": deals["area_sqm"].astype(float),
            "floor": pd.to_numeric(deals["floor"]).astype(float),
            "build_year": pd.to_numeric(deals["build_year"]).astype(float),
            "asking_price": float("nan"),
            "deal_time": _contract_times(deals["contract_date"]),
            "price": deals["price"].astype(float),
        }
    )
    return out.sort_values("deal_time", kind="stable").reset_index(drop=True)


def lease_rows(leases: pd.DataFrame) -> pd.DataFrame:
    """전세 leases in the columns the jeonse-ratio formula takes (월세 rows are left out)."""
    jeonse = leases[leases["monthly_rent"].fillna(0) == 0]
    return pd.DataFrame(
        {
            "complex_id": complex_ids(jeonse),
            "region_code": jeonse["region_code"].astype(str),
            "dong": jeonse["dong"].astype(str),
            "area_sqm": jeonse["area_sqm"].astype(float),
            "deal_time": _contract_times(jeonse["contract_date"]),
            "deposit": jeonse["deposit"].astype(float),
        }
    ).reset_index(drop=True)


def from_exports(trades: pd.DataFrame, rents: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parsed MOLIT exports (:func:`batch.ingest.molit_csv.read_export`), cleaned as ingestion
    cleans them, as deal and lease rows."""
    trades, rents = trades.reset_index(drop=True), rents.reset_index(drop=True)
    return deal_rows(clean(trades, "trade").frame), lease_rows(clean(rents, "rent").frame)


def from_database(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every ingested deal and lease, as deal and lease rows."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in (*PLACE, "contract_date"))
    with connect(settings) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.db_schema)))
        cur = conn.execute(sql.SQL("SELECT {}, price FROM deals").format(columns))
        deals = pd.DataFrame(cur.fetchall(), columns=[*PLACE, "contract_date", "price"])
        cur = conn.execute(sql.SQL("SELECT {}, deposit, monthly_rent FROM leases").format(columns))
        leases = pd.DataFrame(
            cur.fetchall(), columns=[*PLACE, "contract_date", "deposit", "monthly_rent"]
        )
    return deal_rows(deals), lease_rows(leases)


CONTRACT_LABELS = sql.SQL("""
SELECT e.listing_id, e.event_time, e.contract_price, l.complex_id, l.dong_id, l.region_code
FROM outcome_events e
JOIN LATERAL (
    SELECT complex_id, dong_id, region_code FROM listing_features_log l
    WHERE l.listing_id = e.listing_id AND l.event_timestamp <= e.event_time
    ORDER BY l.event_timestamp DESC LIMIT 1
) l ON true
WHERE e.type = 'contract' AND (e.excluded IS NULL OR e.excluded = 'late')
ORDER BY e.event_time
""")


def contract_labels(settings: Settings) -> pd.DataFrame:
    """The platform's own contracts as labelled rows for :mod:`batch.training_set`: the
    listing at the contract's time, the contract price as the label. A late contract is a
    label too (a real price, only reported late); a suspect one (3x off its prediction)
    or one dated in the future is not."""
    with connect(settings) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.db_schema)))
        rows = conn.execute(CONTRACT_LABELS).fetchall()
    frame = pd.DataFrame(
        rows,
        columns=["listing_id", "event_timestamp", "price", "complex_id", "dong_id", "region_code"],
    )
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame["price"] = frame["price"].astype(float)
    return frame
