"""One batch through the phase: validate → (quarantine | clean → load) with timings per stage.

Nothing of a failing batch is loaded: it is quarantined with its report next to the raw
snapshot it came from. A passing batch is cleaned and upserted in one transaction,
together with its row in ``ingest_batches``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import fsspec
import pandas as pd

from batch.ingest import store
from batch.ingest.cleaning import clean
from batch.ingest.snapshot import Snapshot
from batch.ingest.validation import Kind, validate
from homeloop.settings import Settings

logger = logging.getLogger(__name__)

Status = Literal["loaded", "quarantined"]


@dataclass
class BatchResult:
    batch_id: str
    source: str
    kind: Kind
    status: Status
    rows: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    snapshot_uri: str | None = None
    quarantine_uri: str | None = None


def quarantine(settings: Settings, batch_id: str, report: dict[str, Any]) -> str:
    """Write the machine-readable report where operators look for failed batches."""
    uri = f"{settings.raw_root.rstrip('/')}/quarantine/{batch_id}/report.json"
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(fs._parent(path), exist_ok=True)
    with fs.open(path, "wb") as out:
        out.write(json.dumps(report, ensure_ascii=False, indent=2, default=str).encode())
    return uri


def ingest_frame(
    settings: Settings,
    frame: pd.DataFrame,
    kind: Kind,
    source: str,
    *,
    today: date | None = None,
    snapshot: Snapshot | None = None,
) -> BatchResult:
    """Validate, then quarantine or clean and load one parsed batch."""
    started_at = datetime.now(UTC)
    batch_id = f"{started_at:%Y%m%dT%H%M%S}-{source}-{kind}-{uuid.uuid4().hex[:6]}"
    result = BatchResult(batch_id, source, kind, "quarantined", rows={"fetched": len(frame)})
    result.snapshot_uri = snapshot.uri if snapshot else None
    schema = settings.db_schema
    with store.connect(settings) as conn:
        t0 = time.perf_counter()
        earliest = frame["contract_date"].min() if len(frame) else None
        history = store.region_history(conn, schema, kind, earliest) if earliest else {}
        report = validate(frame, kind, today=today or started_at.date(), history=history)
        result.stage_seconds["validate"] = time.perf_counter() - t0
        result.report = report.to_dict()
        if not report.passed:
            result.rows["quarantined"] = len(frame)
            result.quarantine_uri = quarantine(
                settings, batch_id, {**result.report, "snapshot_uri": result.snapshot_uri}
            )
        else:
            t0 = time.perf_counter()
            cleaned = clean(frame, kind)
            result.stage_seconds["clean"] = time.perf_counter() - t0
            result.rows["valid"] = len(frame)
            result.rows.update({f"dropped_{k}": v for k, v in cleaned.dropped.items()})
            t0 = time.perf_counter()
            rows = cleaned.frame.assign(source=source, batch_id=batch_id)
            result.rows["loaded"] = store.upsert(conn, schema, kind, rows)
            result.stage_seconds["load"] = time.perf_counter() - t0
            result.status = "loaded"
        store.record_batch(
            conn,
            schema,
            batch_id=batch_id,
            source=source,
            kind=kind,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            status=result.status,
            rows=result.rows,
            stage_seconds=result.stage_seconds,
            report=result.report if result.status == "quarantined" else None,
            snapshot_uri=result.snapshot_uri,
        )
        conn.commit()  # the rows and the batch record, or nothing
    logger.info(
        "batch=%s status=%s rows=%s seconds=%s",
        batch_id,
        result.status,
        result.rows,
        {k: round(v, 3) for k, v in result.stage_seconds.items()},
    )
    return result
