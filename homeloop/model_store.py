"""Registered price models read back from MLflow, whatever library trained them.

Each version carries its features, target and flavor as tags (written by training in
one call, with the version), so a reader rebuilds exactly the :class:`PriceModel` that
was evaluated. Versions from before these tags are XGBoost boosters predicting price.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from homeloop.price_model import Flavor, PriceModel, TargetSpec
from homeloop.registry import (
    CHAMPION,
    FEATURES_TAG,
    FLAVOR_TAG,
    INTERVAL_TAG,
    TARGET_TAG,
    TEST_MAE_TAG,
    decode_features,
    encode_features,
    model_uri,
)
from homeloop.settings import Settings
from homeloop.tracking import mlflow_client

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ErrorBand:
    """Relative error quantiles on the validation window: a prediction ``p`` has its true
    price in [p × (1 + low), p × (1 + high)] for ``level`` of validation deals."""

    low: float
    high: float
    level: float = 0.9

    def encode(self) -> str:
        return json.dumps({"low": self.low, "high": self.high, "level": self.level})

    @classmethod
    def decode(cls, tag: str) -> ErrorBand:
        value = json.loads(tag)
        return cls(float(value["low"]), float(value["high"]), float(value["level"]))

    @classmethod
    def from_residuals(
        cls, truth: np.ndarray, predicted: np.ndarray, level: float = 0.9
    ) -> ErrorBand:
        ratio = truth / predicted - 1.0
        tail = (1.0 - level) / 2
        return cls(float(np.quantile(ratio, tail)), float(np.quantile(ratio, 1 - tail)), level)


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    name: str
    version: str
    model: PriceModel
    test_mae: float | None
    band: ErrorBand | None = None


def version_tags(model: PriceModel, test_mae: float, band: ErrorBand) -> dict[str, str]:
    return {
        FEATURES_TAG: encode_features(model.features),
        TARGET_TAG: model.target.encode(),
        FLAVOR_TAG: model.flavor,
        TEST_MAE_TAG: f"{test_mae:.3f}",
        INTERVAL_TAG: band.encode(),
    }


def alias_version(settings: Settings, alias: str = CHAMPION) -> str | None:
    """The version an alias points to, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow_client(settings).get_model_version_by_alias(settings.model_name, alias)
    except MlflowException:
        return None
    return str(found.version)


def load_alias(settings: Settings, alias: str = CHAMPION, *, threads: int = 1) -> RegisteredModel:
    """Load the version an alias points to (blocking: call it off any request path)."""
    client = mlflow_client(settings)
    found = client.get_model_version_by_alias(settings.model_name, alias)
    tags = found.tags or {}
    if FEATURES_TAG not in tags:
        raise RuntimeError(
            f"model {settings.model_name} v{found.version} has no {FEATURES_TAG} tag"
        )
    flavor: Flavor = "lightgbm" if tags.get(FLAVOR_TAG) == "lightgbm" else "xgboost"
    target = TargetSpec.decode(tags[TARGET_TAG]) if TARGET_TAG in tags else TargetSpec("price")
    uri = model_uri(settings.model_name, alias)  # type: ignore[arg-type]
    if flavor == "xgboost":
        import mlflow.xgboost
        import xgboost as xgb

        booster = mlflow.xgboost.load_model(uri)
        if not isinstance(booster, xgb.Booster):
            booster = booster.get_booster()
        booster.set_param({"nthread": threads})
    else:
        import mlflow.lightgbm

        booster = mlflow.lightgbm.load_model(uri)
    model = PriceModel(flavor, booster, decode_features(tags[FEATURES_TAG]), target)
    mae = tags.get(TEST_MAE_TAG)
    band = ErrorBand.decode(tags[INTERVAL_TAG]) if INTERVAL_TAG in tags else None
    loaded = RegisteredModel(
        settings.model_name, str(found.version), model, float(mae) if mae else None, band
    )
    logger.info("model loaded name=%s version=%s alias=%s", loaded.name, loaded.version, alias)
    return loaded


@dataclass(frozen=True)
class ModelReference:
    """What a model version was trained on, for the feedback loop: the training reference
    (:mod:`homeloop.reference`) and the figures its triggers compare with."""

    version: str
    summary: dict[str, Any]
    sample: pd.DataFrame
    test_mae: float | None
    training_rows: int | None
    window_end: datetime | None


def load_reference(settings: Settings, version: str) -> ModelReference:
    """The reference artifacts of a registered version's run (blocking: off the event loop)."""
    import tempfile
    from pathlib import Path

    import mlflow.artifacts

    client = mlflow_client(settings)
    found = client.get_model_version(settings.model_name, version)
    if not found.run_id:
        raise RuntimeError(f"model {settings.model_name} v{version} has no training run")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(
            mlflow.artifacts.download_artifacts(
                run_id=found.run_id, artifact_path="reference", dst_path=tmp,
                tracking_uri=settings.tracking_uri,
            )
        )  # fmt: skip
        summary = json.loads((folder / "summary.json").read_text())
        sample = pd.read_parquet(folder / "sample.parquet")
    training = summary.get("training", {})
    mae = (found.tags or {}).get(TEST_MAE_TAG)
    end = training.get("window_end")
    return ModelReference(
        version=str(version),
        summary=summary,
        sample=sample,
        test_mae=float(mae) if mae else None,
        training_rows=training.get("rows"),
        window_end=datetime.fromisoformat(end) if end else None,
    )
