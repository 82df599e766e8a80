"""Ingestion tables: deals, leases, properties (listings), in-house listings, batches.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _place_columns() -> list[sa.Column]:
    return [
        sa.Column("region_code", sa.String(5), nullable=False),
        sa.Column("dong", sa.Text, nullable=False),
        sa.Column("complex_name", sa.Text, nullable=False),
        sa.Column("complex_key", sa.Text),
        sa.Column("jibun", sa.Text),
        sa.Column("area_sqm", sa.Float, nullable=False),
        sa.Column("floor", sa.Integer, nullable=False),
        sa.Column("build_year", sa.Integer),
        sa.Column("contract_date", sa.Date, nullable=False),
    ]


def _loaded_columns() -> list[sa.Column]:
    return [
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("batch_id", sa.Text, nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    ]


def upgrade(schema: str) -> None:
    op.create_table(
        "deals",
        sa.Column("deal_key", sa.String(40), primary_key=True),
        *_place_columns(),
        sa.Column("price", sa.Integer, nullable=False, comment="만원"),
        sa.Column("deal_type", sa.Text),
        *_loaded_columns(),
        schema=schema,
    )
    op.create_index("deals_region_date", "deals", ["region_code", "contract_date"], schema=schema)
    op.create_table(
        "leases",
        sa.Column("deal_key", sa.String(40), primary_key=True),
        *_place_columns(),
        sa.Column("deposit", sa.Integer, nullable=False, comment="만원"),
        sa.Column("monthly_rent", sa.Integer, nullable=False, comment="만원"),
        sa.Column("lease_type", sa.Text, nullable=False),
        sa.Column("contract_type", sa.Text),
        sa.Column("contract_term", sa.Text),
        *_loaded_columns(),
        schema=schema,
    )
    op.create_index("leases_region_date", "leases", ["region_code", "contract_date"], schema=schema)
    listing_columns = [
        sa.Column("listing_id", sa.Text, primary_key=True),
        sa.Column("complex_id", sa.Text, nullable=False),
        sa.Column("region_code", sa.String(5), nullable=False),
        sa.Column("dong", sa.Text, nullable=False),
        sa.Column("lat", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("area_sqm", sa.Float, nullable=False),
        sa.Column("floor", sa.Integer, nullable=False),
        sa.Column("build_year", sa.Integer, nullable=False),
        sa.Column("asking_price", sa.Integer),
        sa.Column("jeonse_price", sa.Integer),
        sa.Column("status", sa.Text, nullable=False, server_default="listed"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]
    op.create_table(
        "properties",
        *[c.copy() for c in listing_columns],
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(40), nullable=False),
        schema=schema,
    )
    op.create_table("inhouse_listings", *[c.copy() for c in listing_columns], schema=schema)
    op.create_table(
        "ingest_batches",
        sa.Column("batch_id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("rows", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("stage_seconds", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("report", postgresql.JSONB),
        sa.Column("snapshot_uri", sa.Text),
        schema=schema,
    )


def downgrade(schema: str) -> None:
    for table in ("ingest_batches", "inhouse_listings", "properties", "leases", "deals"):
        op.drop_table(table, schema=schema)
