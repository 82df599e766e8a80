"""PostgreSQL at the edge: migrations, one-transaction upserts, the batch log.

Loads go through a temporary table filled with COPY and one ``INSERT … ON CONFLICT``, so
a batch of 60k rows is one round of work, is idempotent by ``deal_key``, and is either
wholly in or wholly out.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from batch.ingest.columns import COMMON
from batch.ingest.validation import Kind
from homeloop.db import connect as connect

logger = logging.getLogger(__name__)

TABLE: dict[Kind, str] = {"trade": "deals", "rent": "leases"}
LOAD_COLUMNS: dict[Kind, tuple[str, ...]] = {
    "trade": ("deal_key", *COMMON, "price", "deal_type", "source", "batch_id"),
    "rent": (
        "deal_key",
        *COMMON,
        "deposit",
        "monthly_rent",
        "lease_type",
        "contract_type",
        "contract_term",
        "source",
        "batch_id",
    ),
}


def _cell(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def upsert(conn: psycopg.Connection[Any], schema: str, kind: Kind, frame: pd.DataFrame) -> int:
    """Insert or update the cleaned rows by ``deal_key``; the caller owns the transaction."""
    columns = LOAD_COLUMNS[kind]
    table = sql.Identifier(schema, TABLE[kind])
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns[1:]
    )
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TEMP TABLE staging (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
                table
            )
        )
        with cur.copy(sql.SQL("COPY staging ({}) FROM STDIN").format(names)) as copy:
            for row in frame[list(columns)].itertuples(index=False, name=None):
                copy.write_row([_cell(v) for v in row])
        cur.execute(
            sql.SQL(
                "INSERT INTO {table} ({names}) SELECT {names} FROM staging "
                "ON CONFLICT (deal_key) DO UPDATE SET {updates}"
            ).format(table=table, names=names, updates=updates)
        )
        return cur.rowcount


def record_batch(
    conn: psycopg.Connection[Any],
    schema: str,
    *,
    batch_id: str,
    source: str,
    kind: str,
    started_at: datetime,
    finished_at: datetime,
    status: str,
    rows: dict[str, int],
    stage_seconds: dict[str, float],
    report: dict[str, Any] | None,
    snapshot_uri: str | None,
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (batch_id, source, kind, started_at, finished_at, status, rows, "
                "stage_seconds, report, snapshot_uri) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (batch_id) DO UPDATE SET finished_at = EXCLUDED.finished_at, "
                "status = EXCLUDED.status, rows = EXCLUDED.rows, "
                "stage_seconds = EXCLUDED.stage_seconds, report = EXCLUDED.report"
            ).format(sql.Identifier(schema, "ingest_batches")),
            (
                batch_id,
                source,
                kind,
                started_at,
                finished_at,
                status,
                json.dumps(rows),
                json.dumps(stage_seconds),
                json.dumps(report) if report is not None else None,
                snapshot_uri,
            ),
        )


def region_history(
    conn: psycopg.Connection[Any], schema: str, kind: Kind, before: Any, months: int = 3
) -> dict[str, float]:
    """Mean 만원/㎡ per region over the ``months`` before ``before`` (sales, or 전세 deposits)."""
    if kind == "trade":
        query = (
            "SELECT region_code, avg(price::float / area_sqm) FROM {} "
            "WHERE contract_date >= %s::date - make_interval(months => %s) "
            "AND contract_date < %s GROUP BY region_code"
        )
    else:
        query = (
            "SELECT region_code, avg(deposit::float / area_sqm) FROM {} "
            "WHERE lease_type = 'jeonse' "
            "AND contract_date >= %s::date - make_interval(months => %s) "
            "AND contract_date < %s GROUP BY region_code"
        )
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(query).format(sql.Identifier(schema, TABLE[kind])), (before, months, before)
        )
        return {region: float(mean) for region, mean in cur.fetchall()}
