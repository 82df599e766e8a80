"""Models held in named slots as immutable records.

A request reads a slot's record once, so replacing the record (a pointer swap) never
breaks a request in flight; later issues add a candidate slot, A/B routing and
blue-green switching on top of the same records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from homeloop.model_store import load_alias as load_registered
from homeloop.price_model import PriceModel
from homeloop.registry import CHAMPION
from homeloop.settings import Settings


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One model version ready to serve: its booster, target and exact input columns."""

    name: str
    version: str
    model: PriceModel

    @property
    def features(self) -> tuple[str, ...]:
        return self.model.features

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Prices in 만원 for a 2-D float array in ``features`` order (NaN = missing)."""
        return self.model.predict(rows)


def load_alias(settings: Settings, alias: str = CHAMPION) -> LoadedModel:
    """Load the version an alias points to (blocking; off the request path). One request,
    one thread: no thread-pool hand-off per call."""
    found = load_registered(settings, alias, threads=1)
    return LoadedModel(found.name, found.version, found.model)


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
