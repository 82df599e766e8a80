"""Registered price models read back from MLflow, whatever library trained them.

Each version carries its features, target and flavor as tags (written by training in
one call, with the version), so a reader rebuilds exactly the :class:`PriceModel` that
was evaluated. Versions from before these tags are XGBoost boosters predicting price.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from homeloop.price_model import Flavor, PriceModel, TargetSpec
from homeloop.registry import (
    CHAMPION,
    FEATURES_TAG,
    FLAVOR_TAG,
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
class RegisteredModel:
    name: str
    version: str
    model: PriceModel
    test_mae: float | None


def version_tags(model: PriceModel, test_mae: float) -> dict[str, str]:
    return {
        FEATURES_TAG: encode_features(model.features),
        TARGET_TAG: model.target.encode(),
        FLAVOR_TAG: model.flavor,
        TEST_MAE_TAG: f"{test_mae:.3f}",
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
    loaded = RegisteredModel(
        settings.model_name, str(found.version), model, float(mae) if mae else None
    )
    logger.info("model loaded name=%s version=%s alias=%s", loaded.name, loaded.version, alias)
    return loaded
