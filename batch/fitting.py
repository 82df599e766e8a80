"""Fitting the candidate grid: every candidate on the same time-ordered split, in parallel.

XGBoost and LightGBM release the GIL while they build trees, so threads run candidates
side by side, the machine's cores shared out between them. On 2 cores this ties with one
candidate after another on all cores (1M rows: 26.2 s against 26.1 s, benchmarks/training.py
--sequential); it pays off where a machine has more cores than one booster uses well.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from batch.candidates import EARLY_STOPPING_ROUNDS, MONOTONE, SEED, Candidate
from batch.dataset import TrainingSet
from homeloop.price_model import AREA, LEVEL, PriceModel, TargetSpec


@dataclass(frozen=True)
class Split:
    """Train and validation arrays in the booster's target space."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    columns: tuple[str, ...]
    target: TargetSpec


def prepare(training: TrainingSet, train: slice, val: slice) -> Split:
    """The booster's target for the train and validation windows; the fallback level comes
    from the training window only."""
    x, y, columns = training.features, training.labels, training.columns
    target = TargetSpec.fitted(y[train], x[train, columns.index(AREA)])
    base = target.base(x[:, columns.index(LEVEL)])
    t = target.to_target(y, base)
    return Split(x[train], t[train], x[val], t[val], columns, target)


def monotone(columns: tuple[str, ...]) -> list[int]:
    return [MONOTONE.get(c, 0) for c in columns]


@dataclass(frozen=True)
class Fitted:
    candidate: Candidate
    model: PriceModel
    trees: int  # kept after early stopping
    seconds: float


def _fit_xgboost(c: Candidate, split: Split, threads: int) -> tuple[Any, int]:
    import xgboost as xgb

    names = list(split.columns)
    train = xgb.QuantileDMatrix(split.x_train, split.y_train, feature_names=names)
    val = xgb.DMatrix(split.x_val, split.y_val, feature_names=names)
    params = {
        "objective": "reg:squarederror",
        "tree_method": "hist",
        "eta": c.learning_rate,
        "nthread": threads,
        "seed": SEED,
        "monotone_constraints": "(" + ",".join(map(str, monotone(split.columns))) + ")",
        **c.params,
    }
    booster = xgb.train(
        params,
        train,
        num_boost_round=c.n_estimators,
        evals=[(val, "validation")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS,
        verbose_eval=False,
    )
    trees = int(booster.best_iteration) + 1
    # Keep only the trees early stopping chose, so serving needs no iteration range.
    return booster[:trees], trees


def _fit_lightgbm(c: Candidate, split: Split, threads: int) -> tuple[Any, int]:
    import lightgbm as lgb

    names = list(split.columns)
    train = lgb.Dataset(split.x_train, split.y_train, feature_name=names)
    val = lgb.Dataset(split.x_val, split.y_val, reference=train)
    params = {
        "objective": "regression",
        "learning_rate": c.learning_rate,
        "num_threads": threads,
        "seed": SEED,
        "verbosity": -1,
        "monotone_constraints": monotone(split.columns),
        **c.params,
    }
    booster = lgb.train(
        params,
        train,
        num_boost_round=c.n_estimators,
        valid_sets=[val],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    trees = int(booster.best_iteration or c.n_estimators)
    # A fresh booster from the best iterations only: predicting and saving need no range.
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=trees)), trees


FITTERS = {"xgboost": _fit_xgboost, "lightgbm": _fit_lightgbm}


def fit_candidate(candidate: Candidate, split: Split, threads: int = 1) -> Fitted:
    started = time.perf_counter()
    booster, trees = FITTERS[candidate.flavor](candidate, split, threads)
    model = PriceModel(candidate.flavor, booster, split.columns, split.target)
    return Fitted(candidate, model, trees, time.perf_counter() - started)


def fit_grid(
    grid: Sequence[Candidate],
    split: Split,
    *,
    cores: int | None = None,
    workers: int | None = None,
    on_done: Callable[[Fitted], None] | None = None,
) -> list[Fitted]:
    """Fit every candidate, ``min(len(grid), cores)`` at a time (or ``workers``), the
    cores shared between them; results in grid order."""
    if not grid:
        raise ValueError("the candidate grid is empty")
    cores = cores or os.cpu_count() or 1
    workers = max(1, min(len(grid), workers or cores))
    threads = max(1, cores // workers)

    def run(candidate: Candidate) -> Fitted:
        fitted = fit_candidate(candidate, split, threads)
        if on_done is not None:
            on_done(fitted)
        return fitted

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fit") as pool:
        return list(pool.map(run, grid))
