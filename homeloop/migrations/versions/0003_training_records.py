"""Training records: the registry's history, retrain requests, and the runs they caused.

MLflow keeps only where an alias points now; ``model_registry_history`` keeps which
version held which alias, when and why, append-only (a trigger refuses UPDATE and
DELETE). ``retrain_requests`` holds every request the trainer consumed (by ``event_id``,
so a redelivered request is one row) and the training run that served it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NOW = sa.func.now()


def upgrade(schema: str) -> None:
    op.create_table(
        "model_registry_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("version", sa.Text),
        sa.Column("alias", sa.Text),
        sa.Column("previous_version", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("mlflow_run_id", sa.Text),
        sa.Column("training_id", sa.BigInteger),
        sa.Column("details", postgresql.JSONB, nullable=False, server_default="{}"),
        schema=schema,
    )
    op.create_index(
        "model_registry_history_model", "model_registry_history", ["model_name", "id"],
        schema=schema,
    )  # fmt: skip
    op.execute(
        f"""
        CREATE FUNCTION "{schema}".refuse_history_change() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION 'model_registry_history is append-only';
        END $$ LANGUAGE plpgsql;
        CREATE TRIGGER model_registry_history_append_only
            BEFORE UPDATE OR DELETE ON "{schema}".model_registry_history
            FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_history_change();
        """
    )
    op.create_table(
        "training_runs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.Text, nullable=False, server_default="running"),
        sa.Column("mlflow_run_id", sa.Text),
        sa.Column("version", sa.Text),
        sa.Column("alias", sa.Text),
        sa.Column("reasons", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("error", sa.Text),
        schema=schema,
    )
    op.create_table(
        "retrain_requests",
        sa.Column("event_id", postgresql.UUID, primary_key=True),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_by", sa.Text, nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("evidence", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column(
            "training_id",
            sa.BigInteger,
            sa.ForeignKey(f"{schema}.training_runs.id"),
            nullable=True,
        ),
        schema=schema,
    )
    op.create_index(
        "retrain_requests_pending", "retrain_requests", ["model_name", "received_at"],
        schema=schema, postgresql_where=sa.text("training_id IS NULL"),
    )  # fmt: skip


def downgrade(schema: str) -> None:
    op.drop_table("retrain_requests", schema=schema)
    op.drop_table("training_runs", schema=schema)
    op.drop_table("model_registry_history", schema=schema)
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".refuse_history_change()')
