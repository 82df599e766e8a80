"""The registry's history in PostgreSQL, append-only: which version held which alias, when
and why (MLflow keeps only where an alias points now)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from homeloop.db import connect
from homeloop.settings import Settings


@dataclass(frozen=True)
class HistoryEntry:
    model_name: str
    action: str
    reason: str
    actor: str
    version: str | None = None
    alias: str | None = None
    previous_version: str | None = None
    mlflow_run_id: str | None = None
    training_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


COLUMNS = ("model_name", "action", "reason", "actor", "version", "alias", "previous_version",
           "mlflow_run_id", "training_id", "details")  # fmt: skip


def append(conn: psycopg.Connection[Any], schema: str, entry: HistoryEntry) -> None:
    """Insert one entry in the caller's transaction."""
    values = [getattr(entry, c) for c in COLUMNS]
    values[-1] = Jsonb(entry.details)
    conn.execute(
        sql.SQL("INSERT INTO {}.model_registry_history ({}) VALUES ({})").format(
            sql.Identifier(schema),
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
            sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)),
        ),
        values,
    )


def history(settings: Settings, model_name: str | None = None) -> list[dict[str, Any]]:
    """Every entry for the model, oldest first."""
    with connect(settings) as conn:
        cur = conn.execute(
            sql.SQL(
                "SELECT recorded_at, {} FROM {}.model_registry_history "
                "WHERE model_name = %s ORDER BY id"
            ).format(
                sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.Identifier(settings.db_schema)
            ),
            [model_name or settings.model_name],
        )
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
