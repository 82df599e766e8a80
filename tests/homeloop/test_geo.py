"""Geo features: haversine distances, nearest station, weighted nearby schools."""

import math

import numpy as np
import pytest

from homeloop.geo import (
    SCHOOL_RADIUS_M,
    Points,
    haversine_m,
    near,
    school_score,
    schools,
    stations,
    subway_distance_m,
)


def test_haversine_known_distances() -> None:
    assert haversine_m(37.5, 127.0, 37.5, 127.0) == 0.0
    one_degree_lat = haversine_m(37.0, 127.0, 38.0, 127.0)
    assert one_degree_lat == pytest.approx(111_195, rel=1e-3)
    # Seoul City Hall to Gangnam station, about 8.9 km
    assert haversine_m(37.5663, 126.9779, 37.4979, 127.0276) == pytest.approx(8_900, rel=0.03)


def test_nearest_station_matches_brute_force() -> None:
    table = stations()
    rng = np.random.default_rng(0)
    for lat, lon in zip(rng.uniform(37.4, 37.7, 50), rng.uniform(126.8, 127.2, 50), strict=True):
        brute = float(np.min(haversine_m(lat, lon, table.lat, table.lon)))
        assert subway_distance_m(float(lat), float(lon)) == pytest.approx(brute, abs=1e-6)


def test_a_station_is_zero_metres_from_itself_and_missing_stays_missing() -> None:
    table = stations()
    assert subway_distance_m(float(table.lat[0]), float(table.lon[0])) == 0.0
    assert subway_distance_m(None, 127.0) is None
    assert school_score(37.5, None) is None


def test_school_score_weights_by_kind_and_distance() -> None:
    points = Points(np.array([37.5, 37.5]), np.array([127.0, 127.0 + 0.0056]), np.array([1.0, 0.6]))
    here = points.weighted_within(37.5, 127.0, SCHOOL_RADIUS_M)
    d = float(haversine_m(37.5, 127.0, 37.5, 127.0056))
    assert d < SCHOOL_RADIUS_M
    assert here == pytest.approx(1.0 + 0.6 * (1 - d / SCHOOL_RADIUS_M))
    assert points.weighted_within(37.6, 127.0, SCHOOL_RADIUS_M) == 0.0


def test_real_tables_load() -> None:
    assert len(stations().lat) == 304 and len(schools().lat) > 1_400
    assert set(np.unique(schools().weight)) == {0.3, 0.6, 0.8, 1.0}
    assert math.isfinite(school_score(37.55, 127.08) or 0.0)


def test_vectorised_queries_equal_the_one_point_queries() -> None:
    rng = np.random.default_rng(1)
    lat = np.r_[rng.uniform(37.45, 37.68, 300), np.nan, 37.5]
    lon = np.r_[rng.uniform(126.85, 127.15, 300), 127.0, np.nan]
    near = stations().nearest_many(lat, lon)
    # k=4 forces the exact fallback wherever more than 4 schools are within the radius.
    for k in (64, 4):
        score = schools().weighted_within_many(lat, lon, SCHOOL_RADIUS_M, k=k)
        for i in range(len(lat)):
            one = school_score(
                None if np.isnan(lat[i]) else lat[i], None if np.isnan(lon[i]) else lon[i]
            )
            assert (one is None and np.isnan(score[i])) or score[i] == pytest.approx(one, abs=1e-9)
    for i in range(300):
        assert near[i] == pytest.approx(subway_distance_m(lat[i], lon[i]), abs=1e-6)
    assert np.isnan(near[300]) and np.isnan(near[301])


def test_remembered_points_give_what_the_queries_give() -> None:
    rng = np.random.default_rng(2)
    lat = np.r_[rng.uniform(37.45, 37.68, 50), np.nan]
    lon = np.r_[rng.uniform(126.85, 127.15, 50), 127.0]
    lat, lon = np.r_[lat, lat[:10]], np.r_[lon, lon[:10]]  # repeated points in one call
    for _ in range(2):  # computed, then remembered
        subway, school = near(lat, lon)
        assert np.array_equal(subway, stations().nearest_many(lat, lon), equal_nan=True)
        expected = schools().weighted_within_many(lat, lon, SCHOOL_RADIUS_M)
        assert np.array_equal(school, expected, equal_nan=True)
