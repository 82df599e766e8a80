"""Geo features: distance to the nearest station and a weighted count of nearby schools.

Formulas, stated once:
- distance: great-circle (haversine) distance in metres, Earth radius 6,371,008.8 m;
- ``subway_distance_m``: distance to the nearest station of the station table;
- ``school_score``: Σ over schools within 1 km of weight(type) × (1 − d / 1 km), with
  weights 초등학교 1.0, 중학교 0.8, 고등학교 0.6 and 0.3 for every other kind, so a school
  next door counts fully and one at the edge of the radius not at all.
Both are ``None`` when the listing has no coordinates (the model takes missing values).
"""

from __future__ import annotations

import csv
import math
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

EARTH_RADIUS_M = 6_371_008.8
SCHOOL_RADIUS_M = 1_000.0
SCHOOL_WEIGHTS = {"초등학교": 1.0, "중학교": 0.8, "고등학교": 0.6}
OTHER_SCHOOL_WEIGHT = 0.3
HERE = Path(__file__).resolve().parent


def haversine_m(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> NDArray[np.float64]:
    """Great-circle distance in metres (vectorised)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def _unit_xyz(lat: NDArray[np.float64], lon: NDArray[np.float64]) -> NDArray[np.float64]:
    p, lam = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(p) * np.cos(lam), np.cos(p) * np.sin(lam), np.sin(p)])


def _chord(metres: float) -> float:
    return float(2 * np.sin(metres / (2 * EARTH_RADIUS_M)))


class Points:
    """Reference points in a KD-tree on the unit sphere: exact neighbours, fast queries."""

    def __init__(
        self, lat: NDArray[np.float64], lon: NDArray[np.float64], weight: NDArray[np.float64]
    ) -> None:
        self.lat, self.lon, self.weight = lat, lon, weight
        self.tree = cKDTree(_unit_xyz(lat, lon))

    def nearest_m(self, lat: float | None, lon: float | None) -> float | None:
        if lat is None or lon is None:
            return None
        _, index = self.tree.query(_unit_xyz(np.array([lat]), np.array([lon]))[0])
        return float(haversine_m(lat, lon, self.lat[index], self.lon[index]))

    def nearest_many(self, lat: ArrayLike, lon: ArrayLike) -> NDArray[np.float64]:
        """:meth:`nearest_m` for arrays in one tree query; NaN where a coordinate is NaN."""
        la, lo = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        out = np.full(la.shape, np.nan)
        ok = ~(np.isnan(la) | np.isnan(lo))
        if ok.any():
            _, index = self.tree.query(_unit_xyz(la[ok], lo[ok]))
            out[ok] = haversine_m(la[ok], lo[ok], self.lat[index], self.lon[index])
        return out

    def weighted_within_many(
        self, lat: ArrayLike, lon: ArrayLike, radius_m: float, k: int = 64
    ) -> NDArray[np.float64]:
        """:meth:`weighted_within` for arrays: one k-nearest query, exact fallback when the
        k-th neighbour is still inside the radius (more than k points around)."""
        la, lo = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        out = np.full(la.shape, np.nan)
        ok = np.flatnonzero(~(np.isnan(la) | np.isnan(lo)))
        if not len(ok):
            return out
        k = min(k, len(self.lat))
        chord, index = self.tree.query(
            _unit_xyz(la[ok], lo[ok]), k=k, distance_upper_bound=_chord(radius_m) * 1.001
        )
        chord, index = chord.reshape(len(ok), k), index.reshape(len(ok), k)
        found = np.isfinite(chord)
        safe = np.where(found, index, 0)
        d = haversine_m(la[ok, None], lo[ok, None], self.lat[safe], self.lon[safe])
        inside = found & (d < radius_m)
        out[ok] = np.sum(np.where(inside, self.weight[safe] * (1.0 - d / radius_m), 0.0), axis=1)
        for row in np.flatnonzero(found[:, -1]):  # possibly more than k within the radius
            i = ok[row]
            out[i] = self.weighted_within(float(la[i]), float(lo[i]), radius_m)
        return out

    def weighted_within(
        self, lat: float | None, lon: float | None, radius_m: float
    ) -> float | None:
        if lat is None or lon is None:
            return None
        found = self.tree.query_ball_point(
            _unit_xyz(np.array([lat]), np.array([lon]))[0], _chord(radius_m)
        )
        if not found:
            return 0.0
        idx = np.asarray(found)
        d = haversine_m(lat, lon, self.lat[idx], self.lon[idx])
        inside = d < radius_m
        return float(np.sum(self.weight[idx][inside] * (1.0 - d[inside] / radius_m)))


@cache
def stations() -> Points:
    with open(HERE / "stations.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    lat = np.array([float(r["Latitude"]) for r in rows])
    lon = np.array([float(r["Longitude"]) for r in rows])
    return Points(lat, lon, np.ones(len(rows)))


@cache
def schools() -> Points:
    with open(HERE / "schools.csv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["Latitude"] and r["Longitude"]]
    lat = np.array([float(r["Latitude"]) for r in rows])
    lon = np.array([float(r["Longitude"]) for r in rows])
    weight = np.array([SCHOOL_WEIGHTS.get(r["학교종류명"], OTHER_SCHOOL_WEIGHT) for r in rows])
    return Points(lat, lon, weight)


# Points already computed: (lat, lon) -> (subway_distance_m, school_score). Listings of a
# complex share its coordinates, so a stream of listings asks for the same few thousand
# points again and again; computing even one batch's distinct points cost ~0.3 ms.
_NEAR: dict[tuple[float, float], tuple[float, float]] = {}
NEAR_CACHE_POINTS = 50_000
_UNKNOWN = (math.nan, math.nan)


def near(lat: ArrayLike, lon: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``subway_distance_m`` and ``school_score`` for arrays of coordinates (NaN where one is
    missing), each distinct point computed once and remembered."""
    la, lo = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    got = np.array([_NEAR.get(key, _UNKNOWN) for key in zip(la.tolist(), lo.tolist(), strict=True)])
    got = got.reshape(len(la), 2)
    todo = np.flatnonzero(np.isnan(got[:, 0]) & ~np.isnan(la) & ~np.isnan(lo))
    if len(todo):
        points, inverse = np.unique(
            np.column_stack([la[todo], lo[todo]]), axis=0, return_inverse=True
        )
        subway = stations().nearest_many(points[:, 0], points[:, 1])
        school = schools().weighted_within_many(points[:, 0], points[:, 1], SCHOOL_RADIUS_M)
        inverse = inverse.reshape(-1)
        got[todo, 0], got[todo, 1] = subway[inverse], school[inverse]
        if len(_NEAR) + len(points) > NEAR_CACHE_POINTS:
            _NEAR.clear()  # bounded; a stream's points come back within a batch or two
        keys = [(float(p[0]), float(p[1])) for p in points.tolist()]
        _NEAR.update(zip(keys, zip(subway.tolist(), school.tolist(), strict=True), strict=True))
    return got[:, 0].copy(), got[:, 1].copy()


def subway_distance_m(lat: float | None, lon: float | None) -> float | None:
    return stations().nearest_m(lat, lon)


def school_score(lat: float | None, lon: float | None) -> float | None:
    return schools().weighted_within(lat, lon, SCHOOL_RADIUS_M)
