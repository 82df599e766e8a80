"""Models held in named slots as immutable records.

A request reads a slot's record once, so replacing the record (a pointer swap) never
breaks a request in flight; later issues add a candidate slot, A/B routing and
blue-green switching on top of the same records.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from homeloop.registry import CHAMPION, FEATURES_TAG, decode_features, model_uri
from homeloop.settings import Settings
from homeloop.tracking import mlflow_client

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One model version ready to serve: its booster and exact input columns."""

    name: str
    version: str
    booster: xgb.Booster
    features: tuple[str, ...]

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Predictions for a 2-D float array in ``features`` order (NaN = missing)."""
        return self.booster.inplace_predict(rows, validate_features=False)


def load_alias(settings: Settings, alias: str = CHAMPION) -> LoadedModel:
    """Load the version an alias points to from the registry (blocking; off the request path)."""
    import mlflow.xgboost

    client = mlflow_client(settings)
    version = client.get_model_version_by_alias(settings.model_name, alias)
    tag = (version.tags or {}).get(FEATURES_TAG)
    if tag is None:
        raise RuntimeError(
            f"model {settings.model_name} v{version.version} has no {FEATURES_TAG} tag"
        )
    booster = mlflow.xgboost.load_model(model_uri(settings.model_name, alias))  # type: ignore[arg-type]
    if not isinstance(booster, xgb.Booster):
        booster = booster.get_booster()
    booster.set_param({"nthread": 1})  # one request, one thread: no pool hand-off per call
    loaded = LoadedModel(settings.model_name, str(version.version), booster, decode_features(tag))
    logger.info("model loaded name=%s version=%s alias=%s", loaded.name, loaded.version, alias)
    return loaded


class ModelSlots:
    """Named slots (``champion`` now; a candidate later) holding immutable model records."""

    def __init__(self) -> None:
        self._slots: dict[str, LoadedModel] = {}

    def get(self, slot: str = CHAMPION) -> LoadedModel | None:
        return self._slots.get(slot)

    def put(self, slot: str, model: LoadedModel) -> None:
        self._slots = {**self._slots, slot: model}  # swap the whole mapping: readers see old or new

    def items(self) -> list[tuple[str, LoadedModel]]:
        return list(self._slots.items())
