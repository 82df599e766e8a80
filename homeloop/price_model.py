"""A trained price model as one immutable record: the booster, its columns, its target.

Training writes these facts as registry tags; serving reads them back, so both sides agree
on what the booster predicts.

The booster learns ``log(price / market level)``, the level being the market's recent
price per ㎡ (``avg_price_3m``: the complex's, else the dong's, else the region's): how far
a flat sits above or below its market, area included. Trees split well on a ratio and
badly on a product. The area enters under a monotone constraint, so a bigger flat is never
predicted cheaper: with area in the denominator instead, 2.7% of the real 성남 test rows
got cheaper with 10% more area (worst −16%), which the behavioural checks reject. Measured
on the real exports (test MAE 13,100만원, MAPE 11.6%, against 14,950 and 11.6% for the
naive per-complex baseline) and on the simulator (MAE 1.04× its noise floor); see the
README. Where no market level exists, the training window's median price per ㎡ stands in.
XGBoost and LightGBM boosters both fit here; both handle missing values natively and have
built-in TreeSHAP.
"""

from __future__ import annotations

import ctypes
import json
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Flavor = Literal["xgboost", "lightgbm"]
Target = Literal["price", "log_market_ratio"]
TARGET: Target = "log_market_ratio"
AREA = "area_sqm"
LEVEL = "avg_price_3m"


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What the booster's output means, and the price per ㎡ used where no level exists."""

    kind: Target = TARGET
    fallback_price_per_sqm: float = float("nan")

    def encode(self) -> str:
        return json.dumps(
            {"kind": self.kind, "fallback_price_per_sqm": self.fallback_price_per_sqm}
        )

    @classmethod
    def decode(cls, tag: str) -> TargetSpec:
        value = json.loads(tag)
        if value.get("kind") not in ("price", "log_market_ratio"):
            raise ValueError(f"unknown target in tag: {tag!r}")
        return cls(value["kind"], float(value.get("fallback_price_per_sqm", "nan")))

    @classmethod
    def fitted(cls, prices: np.ndarray, area_sqm: np.ndarray, kind: Target = TARGET) -> TargetSpec:
        """The spec for a training window: its median price per ㎡ as the fallback level."""
        return cls(kind, float(np.nanmedian(prices / area_sqm)))

    def base(self, level: np.ndarray) -> np.ndarray:
        """The market's price per ㎡ (the fallback where there is no level)."""
        return np.where(np.isnan(level), self.fallback_price_per_sqm, level)

    def to_target(self, prices: np.ndarray, base: np.ndarray) -> np.ndarray:
        return np.log(prices / base) if self.kind == "log_market_ratio" else prices

    def from_target(self, raw: np.ndarray, base: np.ndarray) -> np.ndarray:
        return base * np.exp(raw) if self.kind == "log_market_ratio" else raw


@dataclass(frozen=True, slots=True)
class PriceModel:
    """A booster plus the exact input columns and target it was trained with."""

    flavor: Flavor
    booster: Any  # xgboost.Booster or lightgbm.Booster
    features: tuple[str, ...]
    target: TargetSpec = TargetSpec()
    # The booster's trees as machine code (serving: homeloop.compiled_trees), checked equal
    # to the booster's own predictions; None predicts with the booster.
    compiled: Callable[[np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.target.kind == "log_market_ratio" and LEVEL not in self.features:
            raise ValueError(f"a market-ratio model needs {LEVEL!r} among its features")

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """The booster's outputs for a 2-D float array in ``features`` order (NaN = missing)."""
        if self.flavor == "xgboost":
            return np.asarray(self.booster.inplace_predict(rows, validate_features=False))
        if self.compiled is not None:
            return self.compiled(rows)
        if len(rows) == 1 and (single := _lightgbm_single_row(self.booster)) is not None:
            return single(rows[0])
        return np.asarray(self.booster.predict(rows, num_threads=1))

    def base(self, rows: np.ndarray) -> np.ndarray:
        if self.target.kind == "price":
            return np.ones(len(rows))
        rows = np.asarray(rows, dtype=np.float64)
        return self.target.base(rows[:, self.features.index(LEVEL)])

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Prices in 만원 (float) for rows in ``features`` order."""
        return self.target.from_target(self.raw(rows), self.base(rows))

    def raw_contributions(self, rows: np.ndarray) -> np.ndarray:
        """The booster's own TreeSHAP values in its target's units, the bias last."""
        if self.flavor == "xgboost":
            import xgboost as xgb

            matrix = xgb.DMatrix(rows, feature_names=list(self.features))
            return np.asarray(self.booster.predict(matrix, pred_contribs=True), dtype=np.float64)
        return np.asarray(self.booster.predict(rows, pred_contrib=True, num_threads=1))

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions in 만원, shape (n, len(features) + 1), the base last.

        Each row sums to its prediction. For the market-ratio target the last column is the
        market's price per ㎡ times the booster's bias (the price of a typical flat in that
        market, in 만원), and the log-space contributions
        share out the rest in proportion (the usual way to express a log-link's SHAP
        values in the outcome's unit).
        """
        phi = self.raw_contributions(rows)
        if self.target.kind == "price":
            return phi
        base = self.base(rows)
        start = base * np.exp(phi[:, -1])
        total = phi[:, :-1].sum(axis=1)
        gained = base * np.exp(phi.sum(axis=1)) - start
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(np.abs(total) > 1e-12, gained / total, 0.0)
        out = phi * share[:, None]
        out[:, -1] = start
        return out


class _LightGBMSingleRow:
    """LightGBM's own single-row prediction API, configured once per booster.

    ``Booster.predict`` sets up a predictor and parses its parameters on every call: ~38 µs
    for one row, of which the trees are ~10. A serving process predicts one row per request,
    so it keeps that setup (``LGBM_BoosterPredictForMatSingleRowFastInit``); the outputs are
    the same numbers (a test compares them). Not thread-safe in LightGBM, hence the lock.
    """

    def __init__(self, booster: Any) -> None:
        from lightgbm.basic import _LIB, _c_str, _safe_call

        self._lib, self._check = _LIB, _safe_call
        self._ncol = booster.num_feature()
        self._config = ctypes.c_void_p()
        self._check(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(0),  # C_API_PREDICT_NORMAL
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(-1),  # every iteration
                ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
                ctypes.c_int32(self._ncol),
                _c_str("num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        self._lock = threading.Lock()

    def __call__(self, row: np.ndarray) -> np.ndarray:
        row = np.ascontiguousarray(row, dtype=np.float64)
        if row.shape != (self._ncol,):
            raise ValueError(f"expected {self._ncol} features, got {row.shape}")
        out = np.empty(1, dtype=np.float64)
        length = ctypes.c_int64(0)
        # Plain addresses: ``ndarray.ctypes.data_as`` leaves a reference cycle behind per
        # call, which the collector then has to find (pauses of several ms under load).
        with self._lock:
            self._check(
                self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    self._config,
                    ctypes.c_void_p(row.ctypes.data),
                    ctypes.byref(length),
                    ctypes.c_void_p(out.ctypes.data),
                )
            )
        return out

    def __del__(self) -> None:
        if getattr(self, "_config", None):
            self._lib.LGBM_FastConfigFree(self._config)


_SINGLE_ROW: weakref.WeakKeyDictionary[Any, _LightGBMSingleRow | None] = weakref.WeakKeyDictionary()


def _lightgbm_single_row(booster: Any) -> _LightGBMSingleRow | None:
    """The booster's single-row predictor (None where LightGBM lacks that API: then
    ``Booster.predict`` answers)."""
    try:
        return _SINGLE_ROW[booster]
    except KeyError:
        pass
    try:
        single: _LightGBMSingleRow | None = _LightGBMSingleRow(booster)
    except Exception:  # an optional shortcut: any LightGBM without it predicts as usual
        single = None
    _SINGLE_ROW[booster] = single
    return single
