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
