"""``homeloop train`` by hand: progress, the result table, a record of the run."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from homeloop.cli import app
from homeloop.db import connect
from homeloop.settings import Settings

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_train_by_hand_prints_the_candidates_and_records_the_run(env: Settings) -> None:
    result = runner.invoke(app, ["train", "--source", "simulated", "--deals", "2000"])
    assert result.exit_code == 0, result.output
    for name in ("xgb-100-0.1", "xgb-200-0.05", "lgbm-200-0.05", "noise floor MAE"):
        assert name in result.output
    assert "registered homeloop-price v1 as champion" in result.output
    with connect(env) as conn:
        runs = conn.execute(
            f'SELECT status, reasons, version FROM "{env.db_schema}".training_runs'
        ).fetchall()
    assert runs == [("registered", ["manual"], "1")]


def test_train_refuses_an_unknown_source(env: Settings) -> None:
    result = runner.invoke(app, ["train", "--source", "s3"])
    assert result.exit_code == 2 and "unknown source" in result.output


def test_if_missing_refills_an_empty_online_store_without_training(env: Settings) -> None:
    """A kept registry beside a new Redis (the local stack's keeps nothing): the market views
    come back, and no second model is trained."""
    import redis

    from homeloop.featurestore import apply_repo
    from homeloop.online_layout import known_key

    apply_repo(env)
    first = runner.invoke(app, ["train", "--if-missing", "--deals", "2000"])
    assert first.exit_code == 0, first.output
    assert "registered homeloop-price v1 as champion" in first.output
    client = redis.Redis.from_url(env.require().redis_url)
    regions = known_key(env.feast_project, "region_code")
    try:
        known = client.smembers(regions)
        assert known
        client.delete(regions)  # as a new Redis would be
        again = runner.invoke(app, ["train", "--if-missing", "--deals", "2000"])
        assert again.exit_code == 0, again.output
        assert "nothing to train" in again.output
        assert client.smembers(regions) == known
    finally:
        client.close()
    from homeloop.model_store import alias_version

    assert alias_version(env, "champion") == "1"
    assert alias_version(env, "challenger") is None  # no second model
