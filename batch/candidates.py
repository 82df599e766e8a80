"""The candidate grid, in one place: which models each training run fits and compares.

The source design's three: XGBoost (100 trees, learning rate 0.1), XGBoost (200, 0.05) and
LightGBM (200, 0.05). ``n_estimators`` is a ceiling: every candidate stops early when its
validation error has not improved for ``EARLY_STOPPING_ROUNDS`` rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from homeloop.price_model import Flavor

EARLY_STOPPING_ROUNDS = 30
SEED = 7
# Directions every candidate must keep: a bigger flat is never predicted cheaper.
MONOTONE = {"area_sqm": 1}


@dataclass(frozen=True)
class Candidate:
    name: str
    flavor: Flavor
    n_estimators: int
    learning_rate: float
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """Everything that defines the candidate, as MLflow parameters."""
        return {
            "candidate": self.name,
            "flavor": self.flavor,
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
            **self.params,
        }


_XGB = {"max_depth": 6, "min_child_weight": 5, "subsample": 0.9, "colsample_bytree": 0.9}
_LGBM = {"num_leaves": 63, "min_data_in_leaf": 20, "bagging_fraction": 0.9, "bagging_freq": 1,
         "feature_fraction": 0.9}  # fmt: skip

GRID: tuple[Candidate, ...] = (
    Candidate("xgb-100-0.1", "xgboost", 100, 0.1, _XGB),
    Candidate("xgb-200-0.05", "xgboost", 200, 0.05, _XGB),
    Candidate("lgbm-200-0.05", "lightgbm", 200, 0.05, _LGBM),
)
