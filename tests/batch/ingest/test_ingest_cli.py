"""`homeloop ingest` end to end on the real database, broker and a loopback MOLIT server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from homeloop.cli import app
from homeloop.db import connect
from homeloop.events import AlertEvent
from homeloop.settings import Settings
from tests.batch.ingest.test_molit_client import FakeMolit
from tests.topics import read_topic

pytestmark = pytest.mark.integration

EXPORTS = Path(__file__).resolve().parents[2] / "fixtures" / "molit" / "csv_export"
runner = CliRunner()


def count(settings: Settings, table: str) -> int:
    with connect(settings) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{settings.db_schema}"."{table}"').fetchone()
        return int(row[0]) if row else -1


def test_ingest_csv_loads_and_reruns_idempotently(env: Settings) -> None:
    files = [str(EXPORTS / "apt_trade_jungwon.csv"), str(EXPORTS / "apt_rent_jungwon.csv")]
    first = runner.invoke(app, ["ingest", "csv", *files])
    assert first.exit_code == 0, first.output
    deals, leases = count(env, "deals"), count(env, "leases")
    assert deals == 1_771 and leases == 2_945
    again = runner.invoke(app, ["ingest", "csv", *files])
    assert again.exit_code == 0
    assert (count(env, "deals"), count(env, "leases")) == (deals, leases)
    assert (env.data_dir / "metrics" / "ingest.prom").read_text().count(
        "homeloop_ingest_runs_total"
    ) >= 1


def test_a_broken_file_is_refused_and_named(env: Settings, tmp_path: Path) -> None:
    broken = tmp_path / "apt_trade_broken.csv"
    broken.write_bytes(
        (EXPORTS / "apt_trade_jungwon.csv").read_bytes().decode("cp949").encode("utf-16")
    )
    result = runner.invoke(
        app, ["ingest", "csv", str(broken), str(EXPORTS / "apt_trade_sujeong.csv")]
    )
    assert result.exit_code == 1
    assert "apt_trade_broken.csv" in result.output and "cp949" in result.output
    assert count(env, "deals") == 1_788  # the good file loaded, the broken one not at all


def test_api_failure_alerts_and_falls_back_to_crawled_files(env: Settings, tmp_path: Path) -> None:
    server = FakeMolit(lambda q, n: (500, b"down", 0.0))
    backup = tmp_path / "crawled"
    backup.mkdir()
    shutil.copy(
        Path(__file__).parent / "crawled_trade_sample.csv", backup / "crawled_trade_2026.csv"
    )
    try:
        result = runner.invoke(
            app,
            ["ingest", "api", "--lawd", "41135", "--month", "202605", "--backup", str(backup)],
            env={
                "HOMELOOP_MOLIT_BASE_URL": server.url,
                "HOMELOOP_MOLIT_SERVICE_KEY": "k",
                "HOMELOOP_MOLIT_TIMEOUT_S": "0.5",
            },
        )
    finally:
        server.close()
    assert result.exit_code == 1 and "failed" in result.output
    assert server.calls == 4
    assert count(env, "deals") == 3  # the backup's rows

    fired = [AlertEvent.from_bytes(v) for v in read_topic(env, "alerts", timeout=3.0)]
    assert [(a.priority, a.rule) for a in fired] == [("P2", "collection_failure")]
    assert "LAWD_CD=41135" in fired[0].message
