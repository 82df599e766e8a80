"""The training job: fit the price model, evaluate it on a later window, record it in MLflow.

This is the thin first version: one XGBoost configuration, a time-ordered 70/15/15 split
(validation for early stopping, test for the reported figures), the model registered with
its exact feature list, and the ``champion`` alias given when no champion exists yet.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from batch.dataset import TrainingSet, from_deals, time_split
from homeloop.metrics import regression_metrics
from homeloop.registry import CHAMPION, FEATURES_TAG, TEST_MAE_TAG, encode_features
from homeloop.settings import Settings
from homeloop.tracking import ensure_experiment, mlflow_client

logger = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "reg:squarederror",
    "eta": 0.1,
    "max_depth": 6,
    "min_child_weight": 5,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "tree_method": "hist",
    "nthread": 2,
    "seed": 7,
}
NUM_BOOST_ROUND = 400
EARLY_STOPPING_ROUNDS = 30
MIN_TRAINING_ROWS = 200


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    version: str
    metrics: dict[str, float]
    rows: dict[str, int]
    window: tuple[str, str]
    aliases: list[str] = field(default_factory=list)
    seconds: float = 0.0


def fit(training: TrainingSet, params: dict[str, Any] | None = None) -> tuple[xgb.Booster, dict]:
    """Fit on the first 70%, stop early on the next 15%, report on the last 15%."""
    if len(training) < MIN_TRAINING_ROWS:
        raise ValueError(
            f"training window has {len(training)} rows; at least {MIN_TRAINING_ROWS} are needed"
        )
    if not np.all(np.isfinite(training.labels)) or np.any(training.labels <= 0):
        raise ValueError("labels must be positive, finite prices in 만원")
    train, val, test = time_split(len(training))
    names = list(training.columns)
    dtrain = xgb.DMatrix(training.features[train], training.labels[train], feature_names=names)
    dval = xgb.DMatrix(training.features[val], training.labels[val], feature_names=names)
    booster = xgb.train(
        {**DEFAULT_PARAMS, **(params or {})},
        dtrain,
        num_boost_round=NUM_BOOST_ROUND,
        evals=[(dval, "validation")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS,
        verbose_eval=False,
    )
    dtest = xgb.DMatrix(training.features[test], feature_names=names)
    predicted = booster.predict(dtest, iteration_range=(0, booster.best_iteration + 1))
    metrics = {
        f"test_{k}": v for k, v in regression_metrics(training.labels[test], predicted).items()
    }
    metrics["best_iteration"] = float(booster.best_iteration)
    split = {"train": train.stop - train.start, "validation": val.stop - val.start}
    split["test"] = test.stop - test.start
    # Keep only the trees early stopping chose, so serving needs no iteration range.
    booster = booster[: booster.best_iteration + 1]
    return booster, {"metrics": metrics, "rows": split}


def train_and_register(
    settings: Settings,
    data: pd.DataFrame | TrainingSet,
    *,
    alias_if_missing: str = CHAMPION,
    extra_metrics: dict[str, float] | None = None,
) -> TrainResult:
    """Train on a training set (or deals, featurized by :func:`from_deals`), log and register
    the model, and give it the alias if it is free."""
    import mlflow
    import mlflow.xgboost

    started = time.perf_counter()
    training = data if isinstance(data, TrainingSet) else from_deals(data)
    booster, report = fit(training)
    metrics = {**report["metrics"], **(extra_metrics or {})}
    window = (str(training.times.iloc[0]), str(training.times.iloc[-1]))

    client = mlflow_client(settings)
    experiment_id = ensure_experiment(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name="price-xgboost") as run:
        mlflow.log_params({**DEFAULT_PARAMS, "num_boost_round": NUM_BOOST_ROUND})
        mlflow.log_params({f"rows_{k}": v for k, v in report["rows"].items()})
        mlflow.log_params({"window_start": window[0], "window_end": window[1]})
        mlflow.log_metrics(metrics)
        mlflow.log_dict({"features": list(training.columns)}, "features.json")
        info = mlflow.xgboost.log_model(
            booster,
            name="model",
            registered_model_name=settings.model_name,
            pip_requirements=[f"xgboost=={xgb.__version__}"],
        )
    version = str(info.registered_model_version)
    client.set_model_version_tag(
        settings.model_name, version, FEATURES_TAG, encode_features(training.columns)
    )
    client.set_model_version_tag(
        settings.model_name, version, TEST_MAE_TAG, f"{metrics['test_mae']:.3f}"
    )
    aliases: list[str] = []
    registered = client.get_registered_model(settings.model_name)
    if alias_if_missing not in (registered.aliases or {}):
        client.set_registered_model_alias(settings.model_name, alias_if_missing, version)
        aliases.append(alias_if_missing)
    result = TrainResult(
        run_id=run.info.run_id,
        model_name=settings.model_name,
        version=version,
        metrics=metrics,
        rows=report["rows"],
        window=window,
        aliases=aliases,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "trained model=%s version=%s test_mae=%.1f rows=%s aliases=%s",
        result.model_name,
        version,
        metrics["test_mae"],
        result.rows,
        aliases,
    )
    return result


def has_alias(settings: Settings, alias: str = CHAMPION) -> bool:
    """Whether the registered model exists and some version holds ``alias``."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    try:
        client.get_model_version_by_alias(settings.model_name, alias)
    except MlflowException:
        return False
    return True
