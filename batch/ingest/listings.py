"""Listings from crawled files and the in-house table → ``properties`` → the ``listings`` topic.

Crawled listing files (``*listing*.csv`` or ``*listing*.jsonl``) follow this contract, one
row per listing, the fields of :class:`homeloop.events.ListingEvent`:

| column | type | note |
| --- | --- | --- |
| listing_id, complex_id | text | required |
| region_code | text | 5-digit 시군구 code |
| dong | text | 법정동 |
| lat, lon | float | optional |
| area_sqm | float | 전용면적 ㎡ |
| floor, build_year | int | |
| asking_price, jeonse_price | int | 만원, optional |
| status | text | listed, updated or delisted (default listed) |
| updated_at | ISO-8601 time | when the listing last changed (default: now) |

A file with any invalid row is refused whole with a report of the rows and fields.
Only new or changed listings (by a hash of their content) are published, inside the
load's transaction: a failed publish rolls the load back, so a rerun publishes them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql
from pydantic import ValidationError

from homeloop.events import LISTING_ATTRIBUTES, ListingEvent
from homeloop.publish import publish

FIELDS = LISTING_ATTRIBUTES


class ListingFileError(ValueError):
    """A listing file that cannot be loaded whole; ``report`` says which rows and why."""

    def __init__(self, message: str, report: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ListingLoad:
    source: str
    rows: int = 0
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and value != value) else value


def to_events(records: list[dict[str, Any]], source: str, name: str) -> list[ListingEvent]:
    """Validate every row as a listing event; one bad row refuses the whole set."""
    events, report = [], []
    for i, record in enumerate(records):
        values = {k: _none(record.get(k)) for k in FIELDS if _none(record.get(k)) is not None}
        when = _none(record.get("updated_at"))
        try:
            events.append(
                ListingEvent(
                    **values,
                    source=source,
                    event_time=pd.Timestamp(when).to_pydatetime() if when else datetime.now(UTC),
                )
            )
        except (ValidationError, ValueError, TypeError) as exc:
            problems: list[dict[str, str | None]] = [{"field": None, "message": str(exc)}]
            if isinstance(exc, ValidationError):
                problems = [
                    {"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                    for e in exc.errors(include_url=False)
                ]
            report.append({"row": i + 1, "errors": problems})
    if report:
        raise ListingFileError(f"{name}: {len(report)} invalid row(s); nothing loaded", report)
    return events


def read_listing_file(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            return [json.loads(line) for line in lines if line.strip()]
        except json.JSONDecodeError as exc:
            raise ListingFileError(f"{path.name}: not JSON Lines ({exc})", []) from exc
    frame = pd.read_csv(path, dtype={"region_code": str, "listing_id": str, "complex_id": str})
    missing = [c for c in ("listing_id", "complex_id", "region_code") if c not in frame.columns]
    if missing:
        raise ListingFileError(f"{path.name}: lacks column(s) {', '.join(missing)}", [])
    return list(frame.to_dict("records"))


def content_hash(event: ListingEvent) -> str:
    payload = json.dumps(event.model_dump(mode="json", include=set(FIELDS)), sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()


def upsert_and_publish(
    conn: psycopg.Connection[Any], settings: Any, events: list[ListingEvent], source: str
) -> ListingLoad:
    """Upsert into ``properties``; publish the new and changed ones; commit only after."""
    load = ListingLoad(source=source, rows=len(events))
    table = sql.Identifier(settings.db_schema, "properties")
    columns = (*FIELDS, "updated_at", "source", "content_hash")
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns[1:]
    )
    query = sql.SQL(
        "INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT (listing_id) DO UPDATE "
        "SET {updates} WHERE {table}.content_hash <> EXCLUDED.content_hash "
        "RETURNING listing_id, (xmax = 0) AS inserted"
    ).format(
        table=table,
        names=names,
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        updates=updates,
    )
    to_publish: list[ListingEvent] = []
    with conn.cursor() as cur:
        for event in events:
            row = [getattr(event, f) for f in FIELDS]
            cur.execute(query, [*row, event.event_time, source, content_hash(event)])
            returned = cur.fetchone()
            if returned is None:
                continue  # unchanged
            listing_id, inserted = returned
            (load.new if inserted else load.changed).append(listing_id)
            status = event.status if event.status == "delisted" or inserted else "updated"
            to_publish.append(event.model_copy(update={"status": status}))
    if to_publish:
        publish(settings, *to_publish)
    conn.commit()
    return load
