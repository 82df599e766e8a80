"""The first model: trained on a year of simulated deal history before the live loop starts."""

from __future__ import annotations

from collections.abc import Callable

from batch import training_data
from batch.market import run_market_job
from batch.train import TrainingOutcome, has_alias, run_training
from homeloop.online_layout import known_key
from homeloop.settings import Settings


def train_on_simulated_history(
    settings: Settings,
    n_deals: int = 20_000,
    if_missing: bool = False,
    progress: Callable[[str], None] | None = None,
) -> TrainingOutcome | None:
    """Train on simulated history; with ``if_missing``, only when no champion exists yet.

    With a champion but an online store without market views (a new Redis beside a kept
    registry: the local stack's Redis keeps nothing on disk), the market views are computed
    again and nothing is trained; without them every prediction lacks its market level
    (a second ``make demo`` was ten times further off the true prices)."""
    say = progress or (lambda _: None)
    champion = if_missing and has_alias(settings)
    if champion and market_views_online(settings):
        return None
    say(f"simulating {n_deals:,} deals")
    data = training_data.simulated(settings, n_deals)
    say("computing the market views (offline and online)")
    # The market views over the same history, offline and online, for serving; training
    # computes the same daily figures directly (equal to Feast's point-in-time join, which
    # a test checks, and much faster on PostgreSQL than Feast's join for 20k rows).
    assert data.span is not None
    since, until = data.span
    run_market_job(settings, since, until, deals=data.deals, leases=data.leases, source="simulated")
    if champion:
        return None
    return run_training(
        settings, data.training, reason="bootstrap", actor="first-model",
        extra_metrics=data.extra_metrics, progress=progress,
    )  # fmt: skip


def market_views_online(settings: Settings) -> bool:
    """Whether the online store holds market figures (the market job's set of regions)."""
    import redis

    client = redis.Redis.from_url(settings.require().redis_url)
    try:
        return bool(client.scard(known_key(settings.feast_project, "region_code")))
    finally:
        client.close()
