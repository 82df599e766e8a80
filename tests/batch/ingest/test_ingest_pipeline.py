"""The ingestion phase on real PostgreSQL: idempotent loads, whole-batch quarantine, snapshots."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import fsspec
import pytest

from batch.ingest.cleaning import clean
from batch.ingest.molit_csv import read_export
from batch.ingest.pipeline import ingest_frame
from batch.ingest.snapshot import SnapshotConflict, read_manifest, write_snapshot
from batch.ingest.sources import fetch_csv_export
from homeloop.db import connect, migrate
from homeloop.settings import Settings

pytestmark = pytest.mark.integration

EXPORTS = Path(__file__).resolve().parents[2] / "fixtures" / "molit" / "csv_export"
TODAY = date(2026, 11, 23)


@pytest.fixture
def db(settings: Settings) -> Settings:
    migrate(settings)
    return settings


def count(settings: Settings, table: str) -> int:
    with connect(settings) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{settings.db_schema}"."{table}"').fetchone()
        assert row is not None
        return int(row[0])


def test_loading_the_same_export_twice_leaves_the_same_rows(db: Settings) -> None:
    fetched = fetch_csv_export(EXPORTS / "apt_trade_jungwon.csv", db.raw_root)
    expected = clean(fetched.frame, "trade")
    first = ingest_frame(
        db, fetched.frame, "trade", fetched.source, today=TODAY, snapshot=fetched.snapshot
    )
    assert first.status == "loaded"
    assert first.rows["loaded"] == len(expected.frame) == count(db, "deals")
    assert first.rows["dropped_cancelled"] == 90
    again = ingest_frame(db, fetched.frame, "trade", fetched.source, today=TODAY)
    assert again.status == "loaded" and count(db, "deals") == len(expected.frame)
    with connect(db) as conn:
        batches = conn.execute(
            f'SELECT status, snapshot_uri FROM "{db.db_schema}".ingest_batches ORDER BY started_at'
        ).fetchall()
    assert [b[0] for b in batches] == ["loaded", "loaded"]
    assert batches[0][1] == fetched.snapshot.uri


def test_a_failing_batch_is_quarantined_whole_with_a_report(db: Settings) -> None:
    frame = read_export((EXPORTS / "apt_trade_sujeong.csv").read_bytes(), "trade")
    frame.loc[5, "price"] = -100
    frame.loc[9, "price"] = 9_999_999
    frame.loc[12, "floor"] = 400
    result = ingest_frame(db, frame, "trade", "test", today=TODAY)
    assert result.status == "quarantined"
    assert count(db, "deals") == 0  # nothing of it was loaded
    report = result.report or {}
    failed = {(f["row"], f["column"]) for f in report["failures"]}
    assert {(5, "price"), (9, "price"), (12, "floor")} <= failed
    assert report["failed_rows"] == 3
    assert result.quarantine_uri is not None
    fs, path = fsspec.core.url_to_fs(result.quarantine_uri)
    stored = json.loads(fs.cat(path))
    assert stored["passed"] is False and stored["failed_rows"] == 3


def test_a_batch_far_from_recent_history_is_quarantined(db: Settings) -> None:
    frame = read_export((EXPORTS / "apt_trade_bundang.csv").read_bytes(), "trade")
    earlier = frame[frame["contract_date"] < date(2026, 3, 1)]
    later = frame[frame["contract_date"] >= date(2026, 3, 1)].copy()
    assert ingest_frame(db, earlier, "trade", "test", today=TODAY).status == "loaded"
    assert ingest_frame(db, later, "trade", "test", today=TODAY).status == "loaded"
    inflated = later.copy()
    inflated["price"] = (inflated["price"] * 1.5).round().astype("Int64")
    inflated["contract_date"] = [date(2026, 6, 1)] * len(inflated)
    result = ingest_frame(db, inflated, "trade", "test", today=TODAY)
    assert result.status == "quarantined"
    check = next(c for c in (result.report or {})["batch_checks"] if c["check"].startswith("mean"))
    assert check["region_code"] == "41135" and check["value"] > 0.2


def test_leases_load(db: Settings) -> None:
    fetched = fetch_csv_export(EXPORTS / "apt_rent_jungwon.csv", db.raw_root)
    result = ingest_frame(db, fetched.frame, "rent", fetched.source, today=TODAY)
    assert result.status == "loaded" and count(db, "leases") == result.rows["loaded"] > 2_900


def test_snapshots_are_immutable_and_listed(tmp_path: Path) -> None:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    first = write_snapshot(str(tmp_path), "molit_api", "41135_202605_p1.xml", b"<a/>", at)
    again = write_snapshot(str(tmp_path), "molit_api", "41135_202605_p1.xml", b"<a/>", at)
    assert first.uri == again.uri
    assert first.uri.endswith(f"raw/molit_api/2026-11-23/41135_202605_p1.{first.sha256[:12]}.xml")
    changed = write_snapshot(str(tmp_path), "molit_api", "41135_202605_p1.xml", b"<b/>", at)
    assert changed.uri != first.uri  # a changed source is a new snapshot, the old one stays
    assert Path(first.uri).read_bytes() == b"<a/>" and Path(changed.uri).read_bytes() == b"<b/>"
    Path(first.uri).write_bytes(b"tampered")
    with pytest.raises(SnapshotConflict):
        write_snapshot(str(tmp_path), "molit_api", "41135_202605_p1.xml", b"<a/>", at)
    manifest = read_manifest(str(tmp_path), "molit_api", "2026-11-23")
    assert [m.sha256 for m in manifest] == [first.sha256, first.sha256, changed.sha256]


def test_snapshots_go_to_any_fsspec_uri() -> None:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    snap = write_snapshot("memory://homeloop-raw", "molit_api", "p1.json", b"{}", at)
    assert snap.uri.startswith("memory://homeloop-raw/raw/molit_api/2026-11-23/p1.")
    fs, path = fsspec.core.url_to_fs(snap.uri)
    assert fs.cat(path) == b"{}"
    assert [m.uri for m in read_manifest("memory://homeloop-raw", "molit_api", "2026-11-23")] == [
        snap.uri
    ]
