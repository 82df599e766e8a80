"""Crawled and in-house listings → properties → only new or changed ones on `listings`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from homeloop.cli import app
from homeloop.db import connect
from homeloop.events import ListingEvent
from homeloop.settings import Settings
from tests.topics import read_topic

pytestmark = pytest.mark.integration
runner = CliRunner()


def row(listing_id: str, **overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "listing_id": listing_id, "complex_id": "C7", "region_code": "41135", "dong": "정자동",
        "lat": 37.36, "lon": 127.11, "area_sqm": 84.9, "floor": 9, "build_year": 2003,
        "asking_price": 150_000, "updated_at": "2026-11-20T09:00:00+09:00",
    }  # fmt: skip
    return base | overrides


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")


def published(settings: Settings) -> list[ListingEvent]:
    return [ListingEvent.from_bytes(v) for v in read_topic(settings, "listings", timeout=3.0)]


def test_crawled_listings_publish_only_what_is_new_or_changed(
    env: Settings, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "crawl_listings_1.jsonl", [row("CR-1"), row("CR-2")])
    first = runner.invoke(app, ["ingest", "crawl", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "2 new" in first.output
    again = runner.invoke(app, ["ingest", "crawl", str(tmp_path)])
    assert "0 new, 0 changed" in again.output

    write_jsonl(
        tmp_path / "crawl_listings_1.jsonl", [row("CR-1", asking_price=149_000), row("CR-2")]
    )
    changed = runner.invoke(app, ["ingest", "crawl", str(tmp_path)])
    assert "0 new, 1 changed" in changed.output

    events = published(env)  # one listing's events keep their order (same key, same partition)
    by_listing: dict[str, list[tuple[str, int | None]]] = {}
    for e in events:
        by_listing.setdefault(e.listing_id, []).append((e.status, e.asking_price))
    assert by_listing == {
        "CR-1": [("listed", 150_000), ("updated", 149_000)],
        "CR-2": [("listed", 150_000)],
    }
    assert all(e.source == "crawl" for e in events)


def test_a_file_with_a_bad_row_is_refused_whole(env: Settings, tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "bad_listings.jsonl",
        [row("OK-1"), row("BAD-1", region_code="4113", area_sqm=-3)],
    )
    result = runner.invoke(app, ["ingest", "crawl", str(tmp_path)])
    assert result.exit_code == 1
    assert "1 invalid row(s); nothing loaded" in result.output
    with connect(env) as conn:
        found = conn.execute(f'SELECT count(*) FROM "{env.db_schema}".properties').fetchone()
    assert found == (0,)
    report = json.loads(
        (Path(env.raw_root) / "quarantine" / "listings-bad_listings" / "report.json").read_text()
    )
    fields = {e["field"] for e in report["rows"][0]["errors"]}
    assert report["rows"][0]["row"] == 2 and {"region_code", "area_sqm"} <= fields


def test_inhouse_listings_are_read_from_their_table(env: Settings) -> None:
    with connect(env) as conn:
        conn.execute(
            f'INSERT INTO "{env.db_schema}".inhouse_listings (listing_id, complex_id, region_code, '
            "dong, area_sqm, floor, build_year, asking_price, status, updated_at) VALUES "
            "('IH-1', 'C1', '41131', '신흥동', 59.9, 4, 1995, 61000, 'listed', now())"
        )
        conn.commit()
    result = runner.invoke(app, ["ingest", "db"])
    assert result.exit_code == 0, result.output
    assert [(e.listing_id, e.source) for e in published(env)] == [("IH-1", "inhouse")]


def test_crawl_folder_loads_deal_files_too(env: Settings, tmp_path: Path) -> None:
    sample = Path(__file__).parent / "crawled_trade_sample.csv"
    (tmp_path / "crawled_trade_202605.csv").write_bytes(sample.read_bytes())
    write_jsonl(tmp_path / "crawl_listings.jsonl", [row("CR-9")])
    result = runner.invoke(app, ["ingest", "crawl", str(tmp_path)])
    assert result.exit_code == 0, result.output
    with connect(env) as conn:
        deals = conn.execute(f'SELECT count(*) FROM "{env.db_schema}".deals').fetchone()
        props = conn.execute(f'SELECT count(*) FROM "{env.db_schema}".properties').fetchone()
    assert (deals, props) == ((3,), (1,))


def test_daily_runs_the_phase_without_an_api_key(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_jsonl(tmp_path / "daily_listings.jsonl", [row("D-1"), row("D-2")])
    monkeypatch.setenv("HOMELOOP_INGEST_CRAWL_DIR", str(tmp_path))
    result = runner.invoke(app, ["ingest", "daily"])
    assert result.exit_code == 0, result.output
    assert "skipping the MOLIT API" in result.output
    assert {e.listing_id for e in published(env)} == {"D-1", "D-2"}
