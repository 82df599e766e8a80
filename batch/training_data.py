"""Where a training run's labelled rows come from.

``database``: every ingested MOLIT deal (and the platform's contracts, once they are
recorded there), with 전세 leases for the jeonse ratio. ``simulated``: a year of the market
simulator's deals before its start, whose noise floor (the best MAE any model can reach)
is known and reported next to the model's. ``auto`` takes the database when it holds at
least :data:`MIN_DATABASE_DEALS` deals.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

import pandas as pd

from batch.dataset import TrainingSet, combine, from_deals, time_split
from homeloop.settings import Settings

Source = Literal["auto", "database", "simulated"]
MIN_DATABASE_DEALS = 1_000
HISTORY = timedelta(days=365)


@dataclass(frozen=True)
class TrainingData:
    source: str
    training: TrainingSet
    deals: pd.DataFrame
    leases: pd.DataFrame
    extra_metrics: dict[str, float] = field(default_factory=dict)
    span: tuple[datetime, datetime] | None = None  # the simulated history's window


def simulated(settings: Settings, n_deals: int) -> TrainingData:
    from homeloop.market import Market, deal_history
    from homeloop.market.history import lease_history

    market = Market(seed=settings.simulator_seed)
    since, until = market.start - HISTORY, market.start
    deals = deal_history(market, n_deals, since, until, seed=settings.simulator_seed)
    deals = deals.sort_values("deal_time", kind="stable").reset_index(drop=True)
    leases = lease_history(market, n_deals // 2, since, until, seed=settings.simulator_seed)
    training = from_deals(deals.drop(columns=["true_price"]), leases)
    test = time_split(len(deals))[2]
    floor = market.noise_floor_mae(deals["true_price"].to_numpy()[test])
    return TrainingData(
        "simulated", training, deals, leases, {"noise_floor_mae": floor}, (since, until)
    )


def database(settings: Settings) -> TrainingData:
    from batch.labels import from_database

    deals, leases = from_database(settings)
    return TrainingData("database", from_deals(deals, leases), deals, leases)


def with_contracts(settings: Settings, data: TrainingData) -> TrainingData:
    """The platform's own contracts (the feedback loop's labels) added to a source's rows,
    their features as of each contract from the feature store (point-in-time)."""
    from batch.labels import contract_labels
    from batch.training_set import training_set

    contracts = contract_labels(settings)
    if contracts.empty:
        return data
    joined = combine(data.training, training_set(settings, contracts))
    metrics = {**data.extra_metrics, "platform_contracts": float(len(contracts))}
    return replace(data, training=joined, extra_metrics=metrics)


def load(
    settings: Settings, source: Source = "auto", n_simulated: int | None = None
) -> TrainingData:
    n = n_simulated or settings.trainer_simulated_deals
    if source == "simulated":
        return with_contracts(settings, simulated(settings, n))
    if source == "database":
        return with_contracts(settings, database(settings))
    from batch.labels import from_database

    deals, leases = from_database(settings)
    if len(deals) >= MIN_DATABASE_DEALS:
        data = TrainingData("database", from_deals(deals, leases), deals, leases)
    else:
        data = simulated(settings, n)
    return with_contracts(settings, data)
