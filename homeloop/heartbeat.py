"""Heartbeat files: how a long-running process without an HTTP port proves it is alive."""

from __future__ import annotations

import time
from pathlib import Path

from homeloop.settings import Settings


def heartbeat_path(settings: Settings, name: str) -> Path:
    return settings.data_dir / "heartbeats" / name


def beat(settings: Settings, name: str) -> None:
    path = heartbeat_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def age_seconds(settings: Settings, name: str) -> float | None:
    """Seconds since the last beat, or ``None`` if there has been none."""
    try:
        return time.time() - heartbeat_path(settings, name).stat().st_mtime
    except FileNotFoundError:
        return None
