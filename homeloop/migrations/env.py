"""Alembic environment: the connection and the target schema are given by the caller."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
context.configure(
    connection=connection,
    version_table_schema=schema,
    target_metadata=None,
)
with context.begin_transaction():
    context.run_migrations(schema=schema)
