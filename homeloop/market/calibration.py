"""The committed calibration table (see CALIBRATION.md) and synthetic coordinates."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import pandas as pd

CALIBRATION_CSV = Path(__file__).with_name("calibration.csv")

# Approximate centroids of the three 구 of 성남시 (the exports carry no coordinates).
REGION_CENTROIDS: dict[str, tuple[float, float]] = {
    "41135": (37.38, 127.12),  # 분당구
    "41131": (37.45, 127.14),  # 수정구
    "41133": (37.43, 127.17),  # 중원구
}


def _unit_pair(text: str) -> tuple[float, float]:
    """Two stable numbers in [-1, 1) from a name (not Python's salted hash)."""
    digest = hashlib.sha256(text.encode()).digest()
    return (digest[0] / 128 - 1, digest[1] / 128 - 1)


def place(region_code: str, dong: str, complex_name: str) -> tuple[float, float]:
    """Synthetic but stable lat/lon: dong centroid near its 구, complex near its dong."""
    lat, lon = REGION_CENTROIDS[region_code]
    d_lat, d_lon = _unit_pair(f"{region_code}/{dong}")
    c_lat, c_lon = _unit_pair(f"{region_code}/{dong}/{complex_name}")
    return (
        round(lat + 0.025 * d_lat + 0.004 * c_lat, 6),
        round(lon + 0.025 * d_lon + 0.004 * c_lon, 6),
    )


@cache
def load_calibration() -> pd.DataFrame:
    table = pd.read_csv(CALIBRATION_CSV, dtype={"region_code": str})
    unknown = set(table["region_code"]) - set(REGION_CENTROIDS)
    if unknown:
        raise ValueError(f"calibration has regions without a centroid: {sorted(unknown)}")
    return table
