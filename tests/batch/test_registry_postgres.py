"""MLflow on a PostgreSQL backend store, as configured in production-like runs."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from batch.train import has_alias, run_training
from homeloop.db import psycopg_dsn
from homeloop.registry import CHAMPION
from homeloop.settings import Settings
from serving.model_slots import load_alias
from tests.factories import synthetic_deals

pytestmark = pytest.mark.integration


def test_training_registers_the_champion_in_a_postgres_tracking_store(settings: Settings) -> None:
    database = f"mlflow_{uuid.uuid4().hex[:8]}"
    server = settings.require().database_url
    with psycopg.connect(psycopg_dsn(server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    tracking = server.rsplit("/", 1)[0] + f"/{database}"
    mine = settings.model_copy(update={"mlflow_tracking_uri": tracking})

    assert not has_alias(mine)
    first = run_training(mine, synthetic_deals(1_000))
    second = run_training(mine, synthetic_deals(1_000))
    assert first.alias == CHAMPION
    assert second.alias == "challenger"  # the champion alias is only given when free
    loaded = load_alias(mine)
    assert loaded.version == first.version
    assert loaded.features[0] == "area_sqm"
    # Artifacts stay under the data dir, not in the working directory.
    assert (settings.data_dir / "mlartifacts").is_dir()
