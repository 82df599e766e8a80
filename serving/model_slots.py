"""Models held in named slots as immutable records.

A request reads a slot's record once, so replacing the record (a pointer swap) never breaks
a request in flight. A version is loaded off the request path and must pass the golden
request set (:mod:`serving.golden`) before it is put in a slot; a failed load leaves the old
record serving (as Triton does). Slots: ``champion`` (all traffic today) and
``challenger`` (loaded and checked, no traffic until the A/B issue routes some to it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from homeloop.features import MODEL_FEATURES
from homeloop.model_store import ErrorBand
from homeloop.model_store import load_alias as load_registered
from homeloop.price_model import PriceModel
from homeloop.registry import CHAMPION
from homeloop.settings import Settings
from serving import golden

logger = logging.getLogger(__name__)


class ModelRejected(RuntimeError):
    """A loaded version failed the golden request set; the slot keeps its old model."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One model version ready to serve: its booster, target, columns and error band."""

    name: str
    version: str
    model: PriceModel
    band: ErrorBand | None = None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def features(self) -> tuple[str, ...]:
        return self.model.features

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Prices in 만원 for a 2-D float array in ``features`` order (NaN = missing)."""
        return self.model.predict(rows)


def load_alias(settings: Settings, alias: str = CHAMPION) -> LoadedModel:
    """Load and check the version an alias points to (blocking; off the request path).
    One request, one thread: no thread-pool hand-off per call."""
    found = load_registered(settings, alias, threads=1)
    model = found.model
    if settings.serving_compile_trees and model.flavor == "lightgbm":
        model = compiled(model, settings.data_dir / "compiled-trees", f"v{found.version}")
    result = golden.check(model)
    if not result.passed:
        raise ModelRejected(f"v{found.version} failed the golden set: {result.detail}")
    logger.info("v%s passed the golden set: %s", found.version, result.detail)
    return LoadedModel(found.name, found.version, model, found.band)


def compiled(model: PriceModel, cache_dir: Path, what: str) -> PriceModel:
    """``model`` predicting through its compiled trees, if they give the booster's own
    answers on the golden set (with and without missing values); else ``model`` as it is,
    which serves as well, only slower."""
    from homeloop.compiled_trees import compile_lightgbm

    started = time.perf_counter()
    try:
        predict = compile_lightgbm(model.booster, cache_dir)
        rows = golden.golden_rows()[:, [MODEL_FEATURES.index(f) for f in model.features]]
        holes = rows.copy()
        holes[::2, 1::2] = np.nan
        holes[1::2, ::2] = np.nan
        for x in (rows, holes):
            ours, theirs = predict(x), model.booster.predict(x, num_threads=1)
            if not np.allclose(ours, theirs, rtol=1e-9, atol=1e-9):
                worst = float(np.max(np.abs(ours - theirs)))
                raise ValueError(f"compiled trees differ from LightGBM's by up to {worst:.3g}")
    except Exception as exc:  # any failure leaves LightGBM's own predictor serving
        logger.warning("%s: serving with LightGBM's predictor, trees not compiled: %s", what, exc)
        return model
    logger.info("%s: trees compiled in %.1f s", what, time.perf_counter() - started)
    return replace(model, compiled=predict)


class ModelSlots:
    """Named slots holding immutable model records, and the traffic split between them."""

    def __init__(self) -> None:
        self._slots: dict[str, LoadedModel] = {}

    def get(self, slot: str = CHAMPION) -> LoadedModel | None:
        return self._slots.get(slot)

    def put(self, slot: str, model: LoadedModel) -> LoadedModel | None:
        """Swap the whole mapping (readers see old or new); returns the replaced record."""
        previous = self._slots.get(slot)
        self._slots = {**self._slots, slot: model}
        return previous

    def items(self) -> list[tuple[str, LoadedModel]]:
        return list(self._slots.items())

    def traffic(self) -> dict[str, float]:
        """All traffic to the champion until experiments route some elsewhere."""
        return {slot: 1.0 if slot == CHAMPION else 0.0 for slot in self._slots}
