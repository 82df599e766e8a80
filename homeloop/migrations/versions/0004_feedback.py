"""The feedback loop's records: served predictions, what users did next, fired triggers.

``served_predictions`` holds every prediction the streams saw (by ``prediction_id``);
``outcome_events`` every click, inquiry and contract (by ``event_id``, so a redelivered or
duplicated event is one row) with the prediction it was attributed to, once decided.
Rates, realized error and labels are computed from these two tables, so a replay after a
crash changes nothing. ``feedback_triggers`` remembers which retrain triggers fired, so a
restarted worker does not fire the same cause again.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOW = sa.func.now()
WHEN = sa.DateTime(timezone=True)


def upgrade(schema: str) -> None:
    op.create_table(
        "served_predictions",
        sa.Column("prediction_id", postgresql.UUID, primary_key=True),
        sa.Column("listing_id", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("variant", sa.Text, nullable=False),
        sa.Column("predicted_price", sa.Integer, nullable=False),
        sa.Column("region_code", sa.Text),
        sa.Column("event_time", WHEN, nullable=False),
        sa.Column("received_at", WHEN, nullable=False, server_default=NOW),
        schema=schema,
    )
    op.create_index("served_predictions_time", "served_predictions", ["event_time"], schema=schema)
    op.create_index(
        "served_predictions_listing_user", "served_predictions",
        ["listing_id", "user_id", "event_time"], schema=schema,
    )  # fmt: skip
    op.create_table(
        "outcome_events",
        sa.Column("event_id", postgresql.UUID, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("listing_id", sa.Text, nullable=False),
        sa.Column("given_prediction_id", postgresql.UUID),
        sa.Column("contract_price", sa.Integer),
        sa.Column("event_time", WHEN, nullable=False),
        sa.Column("received_at", WHEN, nullable=False, server_default=NOW),
        # Why the event does not count towards rates and error (late, future, suspect
        # price), or NULL when it does (homeloop.outcomes states the rules).
        sa.Column("excluded", sa.Text),
        # Set once attribution is decided: the prediction (NULL: none matched) and how.
        sa.Column("prediction_id", postgresql.UUID),
        sa.Column("attribution", sa.Text),
        sa.Column("attributed_at", WHEN),
        schema=schema,
    )
    op.create_index("outcome_events_time", "outcome_events", ["event_time"], schema=schema)
    op.create_index("outcome_events_prediction", "outcome_events", ["prediction_id"], schema=schema)
    op.create_index(
        "outcome_events_undecided", "outcome_events", ["received_at"], schema=schema,
        postgresql_where=sa.text("attributed_at IS NULL"),
    )  # fmt: skip
    op.create_table(
        "feedback_triggers",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        # The trigger's event time and its cool-down period: one request per cause and period.
        sa.Column("fired_at", WHEN, nullable=False),
        sa.Column("period", sa.BigInteger, nullable=False),
        sa.Column("request_id", postgresql.UUID, nullable=False),
        sa.Column("evidence", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("recorded_at", WHEN, nullable=False, server_default=NOW),
        sa.UniqueConstraint("model_name", "model_version", "reason", "period"),
        schema=schema,
    )


def downgrade(schema: str) -> None:
    op.drop_table("feedback_triggers", schema=schema)
    op.drop_table("outcome_events", schema=schema)
    op.drop_table("served_predictions", schema=schema)
