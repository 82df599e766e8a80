"""Models held in named slots as immutable records.

A request reads a slot's record once, so replacing the record (a pointer swap) never breaks
a request in flight. A version is loaded off the request path and must pass the golden
request set (:mod:`serving.golden`) before it is put in a slot; a failed load leaves the old
record serving (as Triton does). Slots: ``champion`` (all traffic today) and
``challenger`` (loaded and checked, no traffic until the A/B issue routes some to it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

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
    result = golden.check(found.model)
    if not result.passed:
        raise ModelRejected(f"v{found.version} failed the golden set: {result.detail}")
    logger.info("v%s passed the golden set: %s", found.version, result.detail)
    return LoadedModel(found.name, found.version, found.model, found.band)


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
