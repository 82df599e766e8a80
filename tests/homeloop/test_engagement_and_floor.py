"""Floor rule and sliding engagement windows."""

from datetime import UTC, datetime, timedelta

import pytest

from homeloop.engagement import FEATURES, EngagementWindows
from homeloop.features import floor_penalty


def test_floor_rule_with_and_without_the_buildings_height() -> None:
    assert list(floor_penalty([1, 2, 5, 14, 15], [15] * 5)) == [-0.08, -0.04, 0.0, 0.03, -0.03]
    assert list(floor_penalty([0, 1, 2, 9, 10, 30])) == [-0.08, -0.08, -0.04, 0.0, 0.03, 0.03]


T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_windows_slide_in_event_time() -> None:
    windows = EngagementWindows()
    for minutes in (0, 30, 90):
        windows.add("L1", "click", T0 + timedelta(minutes=minutes))
    windows.add("L1", "inquiry", T0 + timedelta(days=2))
    at = T0 + timedelta(minutes=100)
    assert windows.counts("L1", at) == {
        "clicks_1h": 1, "clicks_24h": 3, "clicks_7d": 3,
        "inquiries_1h": 0, "inquiries_24h": 0, "inquiries_7d": 0,
    }  # fmt: skip
    later = windows.counts("L1", T0 + timedelta(days=2, minutes=1))
    assert (later["clicks_24h"], later["clicks_7d"], later["inquiries_1h"]) == (0, 3, 1)
    assert windows.counts("L1", T0 + timedelta(days=8))["clicks_7d"] == 0
    assert set(windows.counts("nobody", at)) == set(FEATURES)


def test_out_of_order_events_and_eviction() -> None:
    windows = EngagementWindows()
    windows.add("L1", "click", T0 + timedelta(minutes=50))
    windows.add("L1", "click", T0 + timedelta(minutes=10))  # late arrival
    assert windows.counts("L1", T0 + timedelta(minutes=20))["clicks_1h"] == 1
    assert windows.counts("L1", T0 + timedelta(minutes=60))["clicks_1h"] == 2
    assert windows.evict(T0 + timedelta(days=7, minutes=30)) == 1
    assert windows.counts("L1", T0 + timedelta(days=7, minutes=30))["clicks_7d"] == 1
    with pytest.raises(ValueError, match="engagement kind"):
        windows.add("L1", "contract", T0)
