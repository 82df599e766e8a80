"""The feature store's offline tables: every value the streams wrote, and the market views.

The stream agents append what they write online to ``*_log`` (so what was served can be
rebuilt point-in-time); the daily market job writes one row per key and day to
``market_*_daily``. Feast reads them through PostgreSQL sources (``feature_repo``).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LISTING = (
    "area_sqm",
    "floor",
    "floor_penalty",
    "building_age",
    "subway_distance_m",
    "school_score",
    "asking_price_per_pyeong",
    "lat",
    "lon",
)
ENGAGEMENT = (
    "clicks_1h",
    "clicks_24h",
    "clicks_7d",
    "inquiries_1h",
    "inquiries_24h",
    "inquiries_7d",
)
MARKET = ("avg_price_3m", "price_change_pct", "jeonse_ratio", "deals_3m")
LEVELS = {"complex": "complex_id", "dong": "dong_id", "region": "region_code"}


def _doubles(names: tuple[str, ...]) -> list[sa.Column]:
    return [sa.Column(name, sa.Float(precision=53)) for name in names]


def upgrade(schema: str) -> None:
    # Keyed like the online store: one value per listing and event time (a replayed event
    # is the same key; of two events at the same instant the first stays, as online).
    op.create_table(
        "listing_features_log",
        sa.Column("listing_id", sa.Text, primary_key=True),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("event_id", postgresql.UUID, nullable=False),
        sa.Column("complex_id", sa.Text),
        sa.Column("dong_id", sa.Text),
        sa.Column("region_code", sa.Text),
        *_doubles(LISTING),
        schema=schema,
    )
    op.create_table(
        "engagement_features_log",
        sa.Column("listing_id", sa.Text, primary_key=True),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), server_default=sa.func.now()),
        *_doubles(ENGAGEMENT),
        schema=schema,
    )
    for level, key in LEVELS.items():
        op.create_table(
            f"market_{level}_daily",
            sa.Column(key, sa.Text, primary_key=True),
            sa.Column("event_timestamp", sa.DateTime(timezone=True), primary_key=True),
            sa.Column("created", sa.DateTime(timezone=True), server_default=sa.func.now()),
            *_doubles(MARKET),
            schema=schema,
        )


def downgrade(schema: str) -> None:
    for level in reversed(LEVELS):
        op.drop_table(f"market_{level}_daily", schema=schema)
    op.drop_table("engagement_features_log", schema=schema)
    op.drop_table("listing_features_log", schema=schema)
