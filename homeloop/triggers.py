"""Retrain triggers: evidence in, at most one request per cause and cool-down out.

Each rule compares the serving model with what it was trained and tested on (its
:class:`Baseline`, from the registry) and returns a :class:`Firing` with the evidence, or
None. :class:`Latch` debounces: a cause fires once for a model version, and again only
after ``cooldown`` of event time (a retrain the gates rejected leaves the same model in
place; its problem is raised again a period later, not on every snapshot). The design's
priorities: realized MAE up 20% is P2; drift, data growth and the schedule are P3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from homeloop.events import Priority, RetrainReason

PRIORITY: dict[RetrainReason, Priority] = {
    "mae_degradation": "P2",
    "drift": "P3",
    "data_growth": "P3",
    "schedule": "P3",
    "manual": "P3",
}
MAE_RISE_PCT = 20.0
MIN_CONTRACTS = 30  # realized MAE over fewer contracts is too noisy to act on
DATA_GROWTH_PCT = 10.0
SCHEDULE_EVERY = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a model version was trained and tested on."""

    model_name: str
    version: str
    test_mae: float | None
    training_rows: int | None
    window_end: datetime | None  # the newest label it was trained on (event time)


@dataclass(frozen=True, slots=True)
class Firing:
    """A trigger that fired: the request's reason, the alert's rule, and the evidence."""

    reason: RetrainReason
    rule: str
    at: datetime
    value: float
    threshold: float
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def priority(self) -> Priority:
        return PRIORITY[self.reason]


def mae_degradation(
    baseline: Baseline,
    mae_7d: float | None,
    contracts: int,
    at: datetime,
    rise_pct: float = MAE_RISE_PCT,
    min_contracts: int = MIN_CONTRACTS,
) -> Firing | None:
    """Realized MAE over the last 7 days of contracts above the test MAE by ``rise_pct``."""
    if baseline.test_mae is None or mae_7d is None or contracts < min_contracts:
        return None
    threshold = baseline.test_mae * (1 + rise_pct / 100)
    if mae_7d <= threshold:
        return None
    return Firing(
        "mae_degradation",
        "realized_mae_rise",
        at,
        mae_7d,
        threshold,
        {
            "realized_mae_7d": round(mae_7d, 1),
            "contracts_7d": contracts,
            "test_mae": baseline.test_mae,
            "rise_pct": round(100 * (mae_7d / baseline.test_mae - 1), 1),
        },
    )


def data_growth(
    baseline: Baseline, new_labels: int, at: datetime, growth_pct: float = DATA_GROWTH_PCT
) -> Firing | None:
    """Labels newer than the training window, as a share of the rows trained on."""
    if not baseline.training_rows:
        return None
    share = 100 * new_labels / baseline.training_rows
    if share <= growth_pct:
        return None
    return Firing(
        "data_growth",
        "labelled_data_growth",
        at,
        share,
        growth_pct,
        {
            "new_labels": new_labels,
            "training_rows": baseline.training_rows,
            "since": baseline.window_end.isoformat() if baseline.window_end else None,
        },
    )


def schedule(baseline: Baseline, at: datetime, every: timedelta = SCHEDULE_EVERY) -> Firing | None:
    """The weekly retrain, in event time: a week after the model's newest training label."""
    if baseline.window_end is None:
        return None
    age = at - baseline.window_end
    if age < every:
        return None
    days = age.total_seconds() / 86_400
    return Firing(
        "schedule",
        "weekly_retrain",
        at,
        days,
        every.total_seconds() / 86_400,
        {"model_age_days": round(days, 2), "every_days": every.total_seconds() / 86_400},
    )


def period(at: datetime, cooldown: timedelta) -> int:
    """The cool-down period an event time falls in (the database's uniqueness key)."""
    return int(at.timestamp() // cooldown.total_seconds())


@dataclass
class Latch:
    """Which causes fired, per model version: one firing per cause until ``cooldown`` passes."""

    cooldown: timedelta
    last: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def allows(self, version: str, firing: Firing) -> bool:
        fired = self.last.get((version, firing.reason))
        return fired is None or firing.at - fired >= self.cooldown

    def record(self, version: str, reason: str, at: datetime) -> None:
        key = (version, reason)
        self.last[key] = max(at, self.last.get(key, at))
