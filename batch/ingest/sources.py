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
