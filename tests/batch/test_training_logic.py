"""Training logic without services: splits, metrics, schedules."""

from datetime import UTC, datetime

import numpy as np
import pytest

from batch.dataset import time_split
from batch.scheduler import SEOUL, next_daily_run, next_weekly_run
from homeloop.metrics import regression_metrics


def test_time_split_is_consecutive_and_complete() -> None:
    train, val, test = time_split(100)
    assert (train.start, train.stop, val.stop, test.stop) == (0, 70, 85, 100)
    sizes = [s.stop - s.start for s in time_split(7)]
    assert sum(sizes) == 7
    with pytest.raises(ValueError, match="sum to 1"):
        time_split(10, (0.5, 0.4))


def test_regression_metrics() -> None:
    m = regression_metrics([100, 200, 300], [110, 190, 300])
    assert m["mae"] == pytest.approx(20 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(200 / 3))
    assert m["mape"] == pytest.approx((10 / 100 + 10 / 200) / 3 * 100)
    assert m["r2"] == pytest.approx(1 - 200 / 20000)
    with pytest.raises(ValueError):
        regression_metrics([], [])


def test_weekly_schedule_is_monday_nine_in_seoul() -> None:
    sunday_night = datetime(2026, 11, 22, 23, 0, tzinfo=SEOUL)
    due = next_weekly_run(sunday_night)
    assert (due.weekday(), due.hour, due.day) == (0, 9, 23)
    at_nine = datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL)
    assert next_weekly_run(at_nine).day == 30  # strictly after
    utc_monday_morning = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 10:00 in Seoul
    assert next_weekly_run(utc_monday_morning).day == 30


def test_daily_market_job_runs_just_after_midnight_in_seoul() -> None:
    evening = datetime(2026, 11, 23, 20, 0, tzinfo=SEOUL)
    assert next_daily_run(evening) == datetime(2026, 11, 24, 0, 5, tzinfo=SEOUL)
    assert next_daily_run(datetime(2026, 11, 24, 0, 5, tzinfo=SEOUL)).day == 25  # strictly after
    utc = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 23:00 in Seoul
    assert next_daily_run(utc) == datetime(2026, 11, 24, 0, 5, tzinfo=SEOUL)
