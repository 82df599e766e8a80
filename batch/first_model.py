"""The first model: trained on a year of simulated deal history before the live loop starts."""

from __future__ import annotations

from datetime import timedelta

from batch.dataset import from_deals, time_split
from batch.market import run_market_job
from batch.train import TrainResult, has_alias, train_and_register
from homeloop.market import Market, deal_history
from homeloop.market.history import lease_history
from homeloop.settings import Settings

HISTORY = timedelta(days=365)


def train_on_simulated_history(
    settings: Settings, n_deals: int = 20_000, if_missing: bool = False
) -> TrainResult | None:
    """Train on simulated history; with ``if_missing``, only when no champion exists yet."""
    if if_missing and has_alias(settings):
        return None
    market = Market(seed=settings.simulator_seed)
    since, until = market.start - HISTORY, market.start
    deals = deal_history(market, n_deals, since, until, seed=settings.simulator_seed)
    deals = deals.sort_values("deal_time", kind="stable").reset_index(drop=True)
    leases = lease_history(market, n_deals // 2, since, until, seed=settings.simulator_seed)
    # The market views over the same history, offline and online, for serving; training
    # computes the same daily figures directly (equal to Feast's point-in-time join, which
    # a test checks, and much faster on PostgreSQL than Feast's join for 20k rows).
    run_market_job(settings, since, until, deals=deals, leases=leases, source="simulated")
    training = from_deals(deals.drop(columns=["true_price"]), leases)
    test = time_split(len(deals))[2]
    # The best MAE any model can reach on the same test window: the noise is known.
    floor = market.noise_floor_mae(deals["true_price"].to_numpy()[test])
    return train_and_register(settings, training, extra_metrics={"noise_floor_mae": floor})
