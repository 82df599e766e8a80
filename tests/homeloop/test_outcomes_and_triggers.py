"""The feedback loop's stated rules: exclusion, watermark, suspect contracts, triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from homeloop.events import UserEvent
from homeloop.outcomes import Watermark, exclusion, is_suspect, refusal
from homeloop.triggers import Baseline, Latch, data_growth, mae_degradation, period, schedule

T = datetime(2026, 7, 1, tzinfo=UTC)
DAY = timedelta(days=1)
BASE = Baseline("m", "3", test_mae=5_000.0, training_rows=20_000, window_end=T - 3 * DAY)


def contract(price: int) -> UserEvent:
    return UserEvent(type="contract", user_id="u", listing_id="l", contract_price=price)


def test_prices_outside_the_design_range_are_refused_and_far_off_ones_suspect() -> None:
    assert refusal(contract(999)) == "implausible_price"
    assert refusal(contract(500_001)) == "implausible_price"
    assert refusal(contract(1_000)) is None and refusal(contract(500_000)) is None
    assert refusal(UserEvent(type="click", user_id="u", listing_id="l")) is None
    assert is_suspect(40_000, 130_000) and is_suspect(400_000, 130_000)
    assert not is_suspect(50_000, 130_000) and not is_suspect(380_000, 130_000)


def test_late_and_future_events_against_the_watermark_and_the_event_clock() -> None:
    late = 2 * DAY
    now = T + 10 * DAY
    assert exclusion(T, None, now, late) is None  # no watermark yet: nothing is late
    assert exclusion(T - 3 * DAY, T, now, late) == "late"
    assert exclusion(T - DAY, T, now, late) is None
    assert exclusion(now + 3 * DAY, T, now, late) == "future"
    assert exclusion(now + DAY, T, now, late) is None  # clocks differ a little


def test_the_watermark_follows_the_slowest_partition_with_records_left() -> None:
    mark, both = Watermark(), {0, 1}
    assert mark.current(both, caught_up=set()) is None
    mark.update(0, [T, T + DAY, T - DAY])
    # partition 1 has records left and none seen yet: nothing can be called late
    assert mark.current(both, caught_up=set()) is None
    assert mark.current(both, caught_up={1}) == T + DAY  # unless it has nothing to read
    # a partition read weeks ahead (a backlog) does not make the others' events late
    mark.update(1, [T + 20 * DAY])
    assert mark.current(both, caught_up=set()) == T + DAY
    mark.update(0, [T + 2 * DAY])
    assert mark.current(both, caught_up={1}) == T + 2 * DAY
    # once partition 0 is read to its end it no longer holds the watermark back
    assert mark.current(both, caught_up={0}) == T + 20 * DAY
    assert mark.current(both, caught_up=both) == T + 20 * DAY
    # and it never moves backwards
    mark.update(0, [T + 3 * DAY])
    assert mark.current(both, caught_up=set()) == T + 20 * DAY


def test_mae_trigger_needs_enough_contracts_and_a_rise_above_20_percent() -> None:
    assert mae_degradation(BASE, 6_100.0, 100, T) is not None
    assert mae_degradation(BASE, 5_900.0, 100, T) is None  # +18%
    assert mae_degradation(BASE, 9_000.0, 10, T) is None  # too few contracts
    fired = mae_degradation(BASE, 6_500.0, 100, T)
    assert fired is not None and fired.priority == "P2"
    assert fired.threshold == pytest.approx(6_000.0)
    assert fired.evidence["rise_pct"] == pytest.approx(30.0)


def test_data_growth_and_schedule_triggers() -> None:
    assert data_growth(BASE, 2_000, T) is None  # exactly 10%: not more
    grown = data_growth(BASE, 2_001, T)
    assert grown is not None and grown.value == pytest.approx(10.005)
    assert schedule(BASE, T) is None  # three days old
    due = schedule(BASE, T + 4 * DAY)
    assert due is not None and due.evidence["model_age_days"] == pytest.approx(7.0)


def test_latch_lets_a_cause_fire_once_per_cooldown() -> None:
    latch = Latch(cooldown=7 * DAY)
    first = mae_degradation(BASE, 7_000.0, 100, T)
    assert first is not None and latch.allows("3", first)
    latch.record("3", first.reason, first.at)
    again = mae_degradation(BASE, 7_000.0, 100, T + 6 * DAY)
    assert again is not None and not latch.allows("3", again)
    assert latch.allows("4", again)  # a new model version starts afresh
    later = mae_degradation(BASE, 7_000.0, 100, T + 7 * DAY)
    assert later is not None and latch.allows("3", later)
    assert period(T, 7 * DAY) != period(T + 7 * DAY, 7 * DAY)
