"""Appends what the agents write online to the offline store (PostgreSQL), batch by batch.

So the offline store holds every value that was ever served, and training sets rebuild
exactly that point-in-time. One ``INSERT … SELECT FROM unnest(…)`` per batch (arrays as
parameters, one round trip); idempotent, so a replayed batch changes nothing: listing rows
are keyed by ``event_id``, engagement rows by (listing, as-of time) and updated in place
(a late event changes the count as of that time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from homeloop import engagement
from homeloop.db import psycopg_dsn
from homeloop.features import LISTING_FEATURES
from homeloop.settings import Settings
from streams.online_writer import EngagementRows, ListingRows, retried


def _nullable(values: Sequence[float]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values]


def _insert(
    table: str, columns: Sequence[tuple[str, str]], conflict: sql.Composable
) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) SELECT * FROM unnest({}) {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns),
        sql.SQL(", ").join(sql.SQL(f"%s::{kind}[]") for _, kind in columns),
        conflict,
    )


LISTING_COLUMNS = (
    ("event_id", "uuid"),
    ("listing_id", "text"),
    ("event_timestamp", "timestamptz"),
    ("complex_id", "text"),
    ("dong_id", "text"),
    ("region_code", "text"),
    *((name, "float8") for name in LISTING_FEATURES),
)
ENGAGEMENT_COLUMNS = (
    ("listing_id", "text"),
    ("event_timestamp", "timestamptz"),
    *((name, "float8") for name in engagement.FEATURES),
)
INSERT_LISTINGS = _insert(
    "listing_features_log", LISTING_COLUMNS, sql.SQL("ON CONFLICT (event_id) DO NOTHING")
)
INSERT_ENGAGEMENT = _insert(
    "engagement_features_log",
    ENGAGEMENT_COLUMNS,
    sql.SQL("ON CONFLICT (listing_id, event_timestamp) DO UPDATE SET {}, created = now()").format(
        sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name))
            for name in engagement.FEATURES
        )
    ),
)


class OfflineLog:
    """One async connection to the offline store's log tables, in the settings' schema."""

    def __init__(self, settings: Settings) -> None:
        self._dsn = psycopg_dsn(settings.require().database_url)
        self._schema = settings.db_schema
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, options=f"-c search_path={self._schema}"
            )
        return self._conn

    async def _execute(self, query: sql.Composed, params: list[Any]) -> None:
        async def run() -> None:
            try:
                conn = await self._connection()
                await conn.execute(query, params)
            except psycopg.OperationalError:
                if self._conn is not None:
                    await self._conn.close()
                raise

        await retried(run)

    async def append_listings(self, rows: ListingRows) -> None:
        if not rows.event_ids:
            return
        params: list[Any] = [
            rows.event_ids,
            rows.listing_ids,
            rows.event_times,
            *(rows.keys[name] for name in ("complex_id", "dong_id", "region_code")),
            *(_nullable(rows.features[name].tolist()) for name in LISTING_FEATURES),
        ]
        await self._execute(INSERT_LISTINGS, params)

    async def append_engagement(self, rows: EngagementRows) -> None:
        if not rows.listing_ids:
            return
        params: list[Any] = [
            rows.listing_ids,
            rows.as_of,
            *(rows.counts[name] for name in engagement.FEATURES),
        ]
        await self._execute(INSERT_ENGAGEMENT, params)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
