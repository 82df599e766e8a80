"""The daily market job: price levels per complex, dong and region, offline and online.

For each day (00:00 Asia/Seoul) it computes every key's own figures from the deals
strictly before that day (:func:`homeloop.price_levels.daily_snapshots`), upserts them
into ``market_*_daily`` (idempotent: a rerun rewrites the same rows), materializes the
newest into the online store with Feast, and publishes which complexes and regions have
figures (the agents count listings outside them). Input: the ``deals`` and ``leases``
tables when they hold data (issue 3's ingestion), simulated history otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from psycopg import sql

from homeloop.db import connect
from homeloop.price_levels import LEVEL_FEATURES, LEVELS, SNAPSHOT_TZ, WINDOW, daily_snapshots
from homeloop.settings import Settings

logger = logging.getLogger(__name__)

TABLES = dict(
    zip(LEVELS, ("market_complex_daily", "market_dong_daily", "market_region_daily"), strict=True)
)


@dataclass(frozen=True)
class MarketRun:
    days: int
    rows: dict[str, int]  # per level
    materialized_until: datetime
    source: str


def kst_days(since: datetime, until: datetime) -> pd.DatetimeIndex:
    """Midnights (Seoul) in [since, until], as UTC instants."""
    first = pd.Timestamp(since).tz_convert(SNAPSHOT_TZ).ceil("D")
    last = pd.Timestamp(until).tz_convert(SNAPSHOT_TZ)
    return pd.date_range(first, last, freq="D").tz_convert("UTC")


def deals_from_db(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deals and 전세 leases from the ingestion tables, in the columns the formulas take:
    the training rows of :mod:`batch.labels`, so the market job and training identify a
    complex and date a deal the same way."""
    from batch.labels import from_database

    deals, leases = from_database(settings)
    columns = ["complex_id", "region_code", "dong", "area_sqm", "deal_time"]
    return deals[[*columns, "price"]], leases[[*columns, "deposit"]]


def write_snapshots(settings: Settings, level: str, frame: pd.DataFrame) -> int:
    """Upserts one level's daily rows (one round trip of arrays)."""
    if frame.empty:
        return 0
    table = TABLES[level]
    names = [level, "event_timestamp", *LEVEL_FEATURES]
    query = sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT * FROM unnest(%s::text[], %s::timestamptz[], {arrays}) "
        "ON CONFLICT ({key}, event_timestamp) DO UPDATE SET {updates}, created = now()"
    ).format(
        t=sql.Identifier(table),
        cols=sql.SQL(", ").join(map(sql.Identifier, names)),
        arrays=sql.SQL(", ").join(sql.SQL("%s::float8[]") for _ in LEVEL_FEATURES),
        key=sql.Identifier(level),
        updates=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in LEVEL_FEATURES
        ),
    )
    params = [
        frame[level].astype(str).tolist(),
        frame["event_timestamp"].tolist(),
        *([None if np.isnan(v) else float(v) for v in frame[name]] for name in LEVEL_FEATURES),
    ]
    with connect(settings) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.db_schema)))
        conn.execute(query, params)
    return len(frame)


def publish_known(settings: Settings, snapshots: dict[str, pd.DataFrame]) -> None:
    """The ids with figures, for the agents' unknown-complex/region counters, and a new
    market version, so readers forget the market figures they remember."""
    import redis

    from homeloop.online_layout import known_key, market_version_key

    client = redis.Redis.from_url(settings.require().redis_url)
    try:
        with client.pipeline(transaction=True) as pipe:
            for level in ("complex_id", "region_code"):
                key = known_key(settings.feast_project, level)
                ids = sorted(set(snapshots[level][level].astype(str)))
                pipe.delete(key)
                if ids:
                    pipe.sadd(key, *ids)
            pipe.incr(market_version_key(settings.feast_project))
            pipe.execute()
    finally:
        client.close()


def run_market_job(
    settings: Settings,
    since: datetime,
    until: datetime,
    deals: pd.DataFrame | None = None,
    leases: pd.DataFrame | None = None,
    source: str = "given",
    materialize: bool = True,
) -> MarketRun:
    """Compute, store and materialize the market views for the days in [since, until]."""
    if deals is None:
        deals, leases = deals_from_db(settings)
        source = "database"
        if deals.empty:
            deals, leases = simulated_deals(settings, since - 2 * WINDOW.to_pytimedelta(), until)
            source = "simulated"
    days = kst_days(since, until)
    snapshots = {level: daily_snapshots(deals, leases, level, days) for level in LEVELS}
    rows = {level: write_snapshots(settings, level, frame) for level, frame in snapshots.items()}
    if materialize and len(days):
        from feature_repo.definitions import MARKET_VIEWS
        from homeloop.featurestore import feature_store

        store = feature_store(settings)
        end = days[-1].to_pydatetime() + timedelta(seconds=1)
        store.materialize(
            start_date=end - timedelta(days=3),
            end_date=end,
            feature_views=[view.name for view in MARKET_VIEWS],
        )
        publish_known(settings, snapshots)
    logger.info("market job: %d days, rows %s, source %s", len(days), rows, source)
    return MarketRun(len(days), rows, until, source)


def simulated_deals(
    settings: Settings, since: datetime, until: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deals and leases of the simulator's market (the same seed as the live loop)."""
    from homeloop.market import Market
    from homeloop.market.history import deal_history, lease_history

    market = Market(seed=settings.simulator_seed)
    days = max(1.0, (until - since).total_seconds() / 86_400)
    n = int(days * 60)  # ~60 deals a day across the 150 complexes, ~20k a year
    deals = deal_history(market, n, since, until, seed=settings.simulator_seed)
    leases = lease_history(market, n // 2, since, until, seed=settings.simulator_seed)
    return deals, leases
