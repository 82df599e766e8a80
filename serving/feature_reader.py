"""Reads a listing's features from the online store for the model's columns."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from homeloop.features import FeatureRow
from homeloop.featurestore import LISTING_VIEW, feature_store
from homeloop.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore


class FeatureReader:
    """Online features by listing id; ``None`` when the store has never seen the listing."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def store(self) -> FeatureStore:
        """Created on first use, so building the component connects to nothing."""
        return feature_store(self._settings)

    async def read(self, listing_id: str, columns: tuple[str, ...]) -> FeatureRow | None:
        refs = [f"{LISTING_VIEW}:{name}" for name in columns]
        response = await self.store.get_online_features_async(
            features=refs, entity_rows=[{"listing_id": listing_id}]
        )
        values = response.to_dict()
        row: FeatureRow = {name: values[name][0] for name in columns}
        if all(v is None for v in row.values()):
            return None
        return row
