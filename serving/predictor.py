"""From requests to prices: features for many listings in one round trip, one model call.

By id, a listing's whole vector comes from the online store (:class:`OnlineReader`, one
script call for every id of a batch). By attributes, the listing's own features are
computed by the same formulas the listing agent uses and only the market figures come
from the store (one pipelined call). If the store is unreachable, requests by attributes
are still answered, without market figures and flagged ``degraded``; requests by id
cannot be and get a 503.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from redis.exceptions import RedisError

from homeloop.features import LISTING_FEATURES, MODEL_FEATURES, dong_id, listing_feature_columns
from homeloop.online_reader import OnlineFeatures, OnlineReader
from homeloop.price_levels import RESOLVED
from serving.schemas import ListingAttributes, PredictionRequest

logger = logging.getLogger(__name__)

_COLUMN = {name: i for i, name in enumerate(MODEL_FEATURES)}
_LEVEL = _COLUMN["avg_price_3m"]
ATTRIBUTES = ("area_sqm", "floor", "build_year", "lat", "lon", "asking_price")

STORE_DOWN = "online store unreachable: market figures missing"
NO_LEVEL = "no market price level for this place: the training window's median was used"


@dataclass
class FeatureBatch:
    """Rows in :data:`MODEL_FEATURES` order, and per row what went wrong or was filled in."""

    matrix: np.ndarray
    updated_at_us: np.ndarray  # NaN where the store gave no listing features
    errors: dict[int, tuple[int, str]] = field(default_factory=dict)  # row -> (status, detail)
    degraded: list[list[str]] = field(default_factory=list)


def attribute_rows(listings: list[ListingAttributes], at: pd.Timestamp) -> np.ndarray:
    """The listing columns for listings described in requests (pure)."""
    frame = pd.DataFrame([{a: getattr(item, a) for a in ATTRIBUTES} for item in listings])
    computed, _ = listing_feature_columns(frame, pd.Series([at] * len(listings)))
    out = np.full((len(listings), len(MODEL_FEATURES)), np.nan)
    for name in LISTING_FEATURES:
        out[:, _COLUMN[name]] = computed[name]
    return out


class CoalescedReader:
    """Reads for requests that arrive in the same event-loop turn go out as one script call.

    Under load many single-listing requests are in flight at once; one call for all of
    them costs one command to pack, send and parse and one vectorised decode instead of
    one each (a DataLoader, in GraphQL terms). A lone request waits one loop turn.
    """

    def __init__(self, reader: OnlineReader) -> None:
        self._reader = reader
        self._pending: list[tuple[list[str], asyncio.Future[OnlineFeatures]]] = []

    async def read(self, listing_ids: list[str]) -> OnlineFeatures:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[OnlineFeatures] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((listing_ids, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        ids = [i for group, _ in pending for i in group]
        task = asyncio.ensure_future(self._reader.read(ids))
        task.add_done_callback(lambda done: _share(done, pending))


def _share(
    done: asyncio.Future[OnlineFeatures],
    pending: list[tuple[list[str], asyncio.Future[OnlineFeatures]]],
) -> None:
    error = done.exception() if not done.cancelled() else asyncio.CancelledError()
    start = 0
    for group, future in pending:
        end = start + len(group)
        if not future.done():  # a cancelled request's future is done already
            if error is not None:
                future.set_exception(error)
            else:
                features = done.result()
                future.set_result(
                    OnlineFeatures(
                        group,
                        features.matrix[start:end],
                        features.found[start:end],
                        features.updated_at_us[start:end],
                    )
                )
        start = end


class Predictor:
    def __init__(self, reader: OnlineReader) -> None:
        self._reader = reader
        self._coalesced = CoalescedReader(reader)

    async def features(self, requests: list[PredictionRequest]) -> FeatureBatch:
        n = len(requests)
        batch = FeatureBatch(np.full((n, len(MODEL_FEATURES)), np.nan), np.full(n, np.nan))
        batch.degraded = [[] for _ in range(n)]
        by_id = [i for i, r in enumerate(requests) if r.listing is None]
        by_attrs = [i for i, r in enumerate(requests) if r.listing is not None]
        if by_id:
            ids = [requests[i].listing_id or "" for i in by_id]
            try:
                found = await self._coalesced.read(ids)
            except (RedisError, OSError) as exc:
                logger.warning("online store read failed: %s", exc)
                for i in by_id:
                    batch.errors[i] = (503, f"{STORE_DOWN}; send the listing's attributes")
            else:
                if len(by_id) == n:  # all by id, in order: the reader's rows are the batch's
                    batch.matrix, batch.updated_at_us = found.matrix, found.updated_at_us
                else:
                    rows = np.asarray(by_id)
                    batch.matrix[rows] = found.matrix
                    batch.updated_at_us[rows] = found.updated_at_us
                for k, known in enumerate(found.found.tolist()):
                    if not known:
                        i = by_id[k]
                        batch.errors[i] = (404, f"listing {ids[k]!r} is not in the online store")
        if by_attrs:
            listings = [requests[i].listing for i in by_attrs]
            rows = np.asarray(by_attrs)
            batch.matrix[rows] = attribute_rows(listings, pd.Timestamp.now(tz="UTC"))  # type: ignore[arg-type]
            places = [
                (item.complex_id, dong_id(item.region_code, item.dong), item.region_code)
                for item in listings
                if item is not None
            ]
            try:
                market = await self._reader.read_market(places)
            except (RedisError, OSError) as exc:
                logger.warning("online store read failed: %s", exc)
                for i in by_attrs:
                    batch.degraded[i].append(STORE_DOWN)
            else:
                for name in RESOLVED:
                    batch.matrix[rows, _COLUMN[name]] = market[name]
        no_level = np.isnan(batch.matrix[:, _LEVEL]).tolist()
        for i in range(n):
            missing = no_level[i] and i not in batch.errors
            if missing and STORE_DOWN not in batch.degraded[i]:
                batch.degraded[i].append(NO_LEVEL)
        return batch
