"""Ingestion runs: which sources to read, and what happens when collection fails.

When the MOLIT API fails after its retries, a P2 alert goes to ``alerts``, nothing already
loaded is touched, and the run falls back to the backup source (crawled files) if given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from batch.ingest import metrics, store
from batch.ingest.health import health_alerts
from batch.ingest.listings import (
    ListingFileError,
    ListingLoad,
    read_listing_file,
    to_events,
    upsert_and_publish,
)
from batch.ingest.molit_client import CollectionFailed, MolitClient
from batch.ingest.pipeline import BatchResult, ingest_frame, quarantine
from batch.ingest.snapshot import write_snapshot
from batch.ingest.sources import Fetched, fetch_crawled, fetch_csv_export
from batch.ingest.validation import Kind
from homeloop.events import AlertEvent
from homeloop.publish import publish
from homeloop.settings import Settings

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class RunSummary:
    results: list[BatchResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)


def _load(settings: Settings, fetched: Fetched, summary: RunSummary) -> None:
    result = ingest_frame(
        settings, fetched.frame, fetched.kind, fetched.source, snapshot=fetched.snapshot
    )
    metrics.observe(result)
    summary.results.append(result)
    _check_health(settings, fetched.source, result.batch_id, summary)
    if result.status == "quarantined":
        summary.alerts.append(
            AlertEvent(
                priority="P2",
                rule="ingest_batch_quarantined",
                value=float(result.rows.get("quarantined", 0)),
                action="batch quarantined; nothing loaded",
                message=f"{result.batch_id}: report at {result.quarantine_uri}",
                source="batch.ingest",
            )
        )


def _check_health(
    settings: Settings, source: str, batch_id: str | None, summary: RunSummary
) -> None:
    from homeloop.db import connect

    with connect(settings) as conn:
        summary.alerts.extend(health_alerts(conn, settings.db_schema, source, batch_id))


def _record_failure(settings: Settings, source: str, kind: str, reason: str) -> None:
    """A collection that failed counts in the success rate: log it as a failed batch."""
    from homeloop.db import connect

    now = datetime.now(UTC)
    with connect(settings) as conn:
        store.record_batch(
            conn,
            settings.db_schema,
            batch_id=f"{now:%Y%m%dT%H%M%S%f}-{source}-{kind}-failed",
            source=source,
            kind=kind,
            started_at=now,
            finished_at=now,
            status="failed",
            rows={},
            stage_seconds={},
            report={"error": reason},
            snapshot_uri=None,
        )
        conn.commit()


def _finish(settings: Settings, summary: RunSummary) -> RunSummary:
    if summary.alerts:
        try:
            publish(settings, *summary.alerts)
        except Exception as exc:  # the alert must not hide the run's result
            logger.error("could not publish %d alert(s): %s", len(summary.alerts), exc)
    metrics.write(settings)
    return summary


def ingest_csv(settings: Settings, paths: Iterable[Path], progress: Progress) -> RunSummary:
    summary = RunSummary()
    for path in paths:
        progress(f"csv {path.name}")
        try:
            fetched = fetch_csv_export(path, settings.raw_root)
        except ValueError as exc:  # a broken file is refused whole and named
            summary.failures.append(f"{path.name}: {exc}")
            metrics.observe_failure("molit_csv")
            continue
        _load(settings, fetched, summary)
    return _finish(settings, summary)


def ingest_crawled_deals(settings: Settings, folder: Path, progress: Progress) -> RunSummary:
    """Crawled deal and lease files (the English-column contract) in a folder."""
    summary = RunSummary()
    for kind in ("trade", "rent"):
        progress(f"crawled {kind} files in {folder}")
        try:
            fetched_files = fetch_crawled(folder, settings.raw_root, kind)
        except ValueError as exc:
            summary.failures.append(str(exc))
            continue
        for fetched in fetched_files:
            _load(settings, fetched, summary)
    return _finish(settings, summary)


def ingest_api(
    settings: Settings,
    kind: Kind,
    lawd_codes: list[str],
    months: list[str],
    progress: Progress,
    backup: Path | None = None,
) -> RunSummary:
    summary = RunSummary()
    cache = redis.Redis.from_url(settings.require().redis_url)
    client = MolitClient(settings, cache=cache)
    failed = False
    try:
        for lawd in lawd_codes:
            for month in months:
                progress(f"api {kind} {lawd} {month}")
                try:
                    fetched_month = client.fetch_month(kind, lawd, month)
                except CollectionFailed as exc:
                    failed = True
                    summary.failures.append(str(exc))
                    metrics.observe_failure("molit_api")
                    _record_failure(settings, "molit_api", kind, str(exc))
                    _check_health(settings, "molit_api", None, summary)
                    summary.alerts.append(
                        AlertEvent(
                            priority="P2",
                            rule="collection_failure",
                            action="fell back to the backup source" if backup else "none",
                            message=str(exc),
                            source="batch.ingest",
                        )
                    )
                    continue
                now = datetime.now(UTC)
                snapshots = [
                    write_snapshot(
                        settings.raw_root,
                        "molit_api",
                        f"{kind}_{lawd}_{month}_p{i + 1}.raw",
                        p,
                        now,
                    )
                    for i, p in enumerate(fetched_month.payloads)
                ]
                _load(
                    settings,
                    Fetched("molit_api", kind, fetched_month.frame, snapshots[0]),
                    summary,
                )
    finally:
        client.close()
        cache.close()
    if failed and backup is not None:
        progress(f"backup {backup}")
        for fetched in fetch_crawled(backup, settings.raw_root, kind):
            _load(settings, fetched, summary)
    return _finish(settings, summary)


def ingest_listings(
    settings: Settings, folder: Path | None, inhouse: bool, progress: Progress
) -> tuple[list[ListingLoad], list[str]]:
    """Crawled listing files in ``folder`` and/or the in-house table → properties → listings."""
    from homeloop.db import connect

    loads: list[ListingLoad] = []
    failures: list[str] = []
    with connect(settings) as conn:
        if folder is not None:
            for path in sorted(folder.glob("*listing*")):
                if path.suffix not in (".csv", ".jsonl"):
                    continue
                progress(f"crawled {path.name}")
                payload = path.read_bytes()
                write_snapshot(settings.raw_root, "crawled", path.name, payload, datetime.now(UTC))
                try:
                    events = to_events(read_listing_file(path), "crawl", path.name)
                except ListingFileError as exc:
                    failures.append(str(exc))
                    metrics.observe_failure("crawled_listings")
                    quarantine(
                        settings, f"listings-{path.stem}", {"file": path.name, "rows": exc.report}
                    )
                    continue
                loads.append(upsert_and_publish(conn, settings, events, "crawl"))
        if inhouse:
            progress("in-house listings")
            records = inhouse_records(conn, settings.db_schema)
            events = to_events(records, "inhouse", "inhouse_listings")
            loads.append(upsert_and_publish(conn, settings, events, "inhouse"))
    metrics.write(settings)
    return loads, failures


def inhouse_records(conn: Any, schema: str) -> list[dict[str, Any]]:
    """The platform's own listings table, read as records in the listing contract."""
    from psycopg import sql
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL("SELECT * FROM {} ORDER BY listing_id").format(
                sql.Identifier(schema, "inhouse_listings")
            )
        )
        return list(cur.fetchall())
