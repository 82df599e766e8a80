"""The homeloop command: subcommands an operator runs, without services."""

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from homeloop.cli import app

runner = CliRunner()


def test_every_job_has_a_subcommand() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = ("up", "provision", "demo", "simulate", "train", "trainer", "market", "worker")
    for command in (*commands, "serve", "schemas"):
        assert command in result.output


def test_schemas_are_current() -> None:
    result = runner.invoke(app, ["schemas", "--check"])
    assert result.exit_code == 0, result.output


def test_history_writes_deals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMELOOP_DATA_DIR", str(tmp_path))
    out = tmp_path / "deals.parquet"
    result = runner.invoke(app, ["history", "--out", str(out), "--deals", "500", "--days", "30"])
    assert result.exit_code == 0, result.output
    deals = pd.read_parquet(out)
    assert len(deals) == 500
    assert {"price", "true_price", "deal_time", "listing_id"} <= set(deals.columns)


def test_heartbeat_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from homeloop.heartbeat import beat
    from homeloop.settings import Settings

    monkeypatch.setenv("HOMELOOP_DATA_DIR", str(tmp_path))
    stale = runner.invoke(app, ["check", "--heartbeat", "scheduler"])
    assert stale.exit_code == 1
    beat(Settings(data_dir=tmp_path), "scheduler")
    alive = runner.invoke(app, ["check", "--heartbeat", "scheduler", "--max-age", "60"])
    assert alive.exit_code == 0, alive.output
