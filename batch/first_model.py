"""The first model: trained on a year of simulated deal history before the live loop starts."""

from __future__ import annotations

from collections.abc import Callable

from batch import training_data
from batch.market import run_market_job
from batch.train import TrainingOutcome, has_alias, run_training
from homeloop.settings import Settings


def train_on_simulated_history(
    settings: Settings,
    n_deals: int = 20_000,
    if_missing: bool = False,
    progress: Callable[[str], None] | None = None,
) -> TrainingOutcome | None:
    """Train on simulated history; with ``if_missing``, only when no champion exists yet."""
    if if_missing and has_alias(settings):
        return None
    say = progress or (lambda _: None)
    say(f"simulating {n_deals:,} deals")
    data = training_data.simulated(settings, n_deals)
    say("computing the market views (offline and online)")
    # The market views over the same history, offline and online, for serving; training
    # computes the same daily figures directly (equal to Feast's point-in-time join, which
    # a test checks, and much faster on PostgreSQL than Feast's join for 20k rows).
    assert data.span is not None
    since, until = data.span
    run_market_job(settings, since, until, deals=data.deals, leases=data.leases, source="simulated")
    return run_training(
        settings, data.training, reason="bootstrap", actor="first-model",
        extra_metrics=data.extra_metrics, progress=progress,
    )  # fmt: skip
