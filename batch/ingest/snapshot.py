"""Raw snapshots: every fetched payload kept as-is, immutable, with a checksum and a manifest.

Layout: ``<root>/raw/<source>/<YYYY-MM-DD>/<stem>.<sha256[:12]><suffix>`` plus
``manifest.jsonl`` in that folder. Names carry the content hash, so a source file that
changes during the day gets a new snapshot instead of replacing the old one.
``root`` is a local path or any fsspec URI (``s3://bucket/prefix`` with s3fs installed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime

import fsspec


@dataclass(frozen=True)
class Snapshot:
    uri: str
    sha256: str
    size: int
    source: str
    name: str
    fetched_at: str


class SnapshotConflict(RuntimeError):
    """A snapshot of that name exists with different bytes: snapshots are never overwritten."""


def write_snapshot(root: str, source: str, name: str, payload: bytes, at: datetime) -> Snapshot:
    folder = f"{root.rstrip('/')}/raw/{source}/{at:%Y-%m-%d}"
    digest = hashlib.sha256(payload).hexdigest()
    stem, dot, suffix = name.rpartition(".")
    uri = f"{folder}/{stem}.{digest[:12]}.{suffix}" if dot else f"{folder}/{name}.{digest[:12]}"
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        with fs.open(path, "rb") as existing:
            if hashlib.sha256(existing.read()).hexdigest() != digest:
                raise SnapshotConflict(f"{uri} exists with other content")
    else:
        fs.makedirs(fs._parent(path), exist_ok=True)
        with fs.open(path, "wb") as out:
            out.write(payload)
    snapshot = Snapshot(uri, digest, len(payload), source, name, at.isoformat())
    manifest_fs, manifest = fsspec.core.url_to_fs(f"{folder}/manifest.jsonl")
    with manifest_fs.open(manifest, "ab") as out:
        out.write((json.dumps(asdict(snapshot), ensure_ascii=False) + "\n").encode())
    return snapshot


def read_manifest(root: str, source: str, day: str) -> list[Snapshot]:
    fs, path = fsspec.core.url_to_fs(f"{root.rstrip('/')}/raw/{source}/{day}/manifest.jsonl")
    if not fs.exists(path):
        return []
    with fs.open(path, "rb") as handle:
        return [Snapshot(**json.loads(line)) for line in handle.read().decode().splitlines()]
