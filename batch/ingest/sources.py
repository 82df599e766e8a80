"""Source adapters: each turns what it reads into raw snapshots and parsed frames of one kind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from batch.ingest.molit_csv import read_export
from batch.ingest.snapshot import Snapshot, write_snapshot
from batch.ingest.validation import Kind


@dataclass(frozen=True)
class Fetched:
    """One payload from a source: kept raw, then parsed."""

    source: str
    kind: Kind
    frame: pd.DataFrame
    snapshot: Snapshot


def csv_kind(path: Path) -> Kind:
    """Exports are named ``apt_trade_*`` or ``apt_rent_*`` by the export system."""
    if "rent" in path.name:
        return "rent"
    if "trade" in path.name:
        return "trade"
    raise ValueError(
        f"{path.name}: cannot tell sales from leases; name it apt_trade_* or apt_rent_*"
    )


def fetch_csv_export(path: Path, raw_root: str, kind: Kind | None = None) -> Fetched:
    """A MOLIT CSV export: snapshot the file as-is, then parse it (refused whole if broken)."""
    payload = path.read_bytes()
    snapshot = write_snapshot(raw_root, "molit_csv", path.name, payload, datetime.now(UTC))
    kind = kind or csv_kind(path)
    return Fetched("molit_csv", kind, read_export(payload, kind), snapshot)


CRAWLED_SUFFIXES = (".csv", ".jsonl")


def read_crawled(path: Path, kind: Kind) -> pd.DataFrame:
    """A crawled file in the documented contract: the English columns of ``columns.py``.

    CSV (UTF-8, header row) or JSON Lines; dates as ISO ``YYYY-MM-DD``; prices in 만원.
    """
    from batch.ingest.columns import DEAL_COLUMNS, LEASE_COLUMNS

    columns = DEAL_COLUMNS if kind == "trade" else LEASE_COLUMNS
    try:
        if path.suffix == ".jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_csv(path, dtype={"region_code": str, "jibun": str})
    except ValueError as exc:
        raise ValueError(f"{path.name}: not readable as {path.suffix[1:]}: {exc}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path.name}: lacks column(s) {', '.join(missing)}")
    frame = frame[list(columns)].copy()
    frame["contract_date"] = pd.to_datetime(frame["contract_date"]).dt.date
    for name in ("floor", "build_year", "price", "deposit", "monthly_rent"):
        if name in frame:
            frame[name] = frame[name].astype("Int64")
    frame["area_sqm"] = frame["area_sqm"].astype(float)
    if kind == "trade":
        frame["cancelled"] = frame["cancelled"].fillna(False).astype(bool)
    return frame


def fetch_crawled(folder: Path, raw_root: str, kind: Kind) -> list[Fetched]:
    """Every crawled file of ``kind`` in a folder (``*trade*`` / ``*rent*``), snapshotted."""
    fetched = []
    for path in sorted(p for p in folder.iterdir() if p.suffix in CRAWLED_SUFFIXES):
        if "listing" in path.name or kind not in path.name:
            continue  # listing files have their own path (batch.ingest.listings)
        snapshot = write_snapshot(
            raw_root, "crawled", path.name, path.read_bytes(), datetime.now(UTC)
        )
        fetched.append(Fetched("crawled", kind, read_crawled(path, kind), snapshot))
    return fetched
