"""What priced rows turn into: a response body and a ``predictions`` event per row.

One plain dict per row, which orjson encodes; the ids of a whole batch come from one random
read. Built the first way (two ``uuid4()`` per row, and a pydantic model per event before
that), a batch of 100 took longer than its model call. The declared response models
still document the shapes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from homeloop.events import SCHEMA_VERSION
from homeloop.registry import CHAMPION
from serving.model_slots import LoadedModel
from serving.schemas import PredictionRequest
from serving.spool import Record


def uuid4_strings(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs in their text form, from one ``os.urandom`` call
    (``uuid4()`` makes a syscall and an object per id)."""
    raw = bytearray(os.urandom(16 * n))
    for i in range(0, 16 * n, 16):
        raw[i + 6] = raw[i + 6] & 0x0F | 0x40  # version 4
        raw[i + 8] = raw[i + 8] & 0x3F | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-"
        f"{h[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


@dataclass(frozen=True)
class Priced:
    """Rows one model answered: the requests, their inputs in its feature order (NaN =
    missing), their prices, and what the store said about them."""

    model: LoadedModel
    requests: list[PredictionRequest]
    rows: np.ndarray
    prices: list[int]  # 만원
    updated_at_us: np.ndarray  # NaN where the store had no listing features
    degraded: list[list[str]]
    latency_ms: float
    prediction_ids: list[str]
    at: datetime  # event time of the predictions (a simulation's, in a simulation)


def events(priced: Priced) -> list[Record]:
    """The ``predictions`` events, encoded (a test validates them against
    :class:`~homeloop.events.PredictionEvent`; building that model per row cost more than
    the prediction). orjson writes a NaN feature as null."""
    model = priced.model
    event_ids = uuid4_strings(len(priced.prices))
    names = model.features
    out: list[Record] = []
    for k, values in enumerate(priced.rows.tolist()):
        request, prediction_id = priced.requests[k], priced.prediction_ids[k]
        listing_id = request.listing_id or f"adhoc-{prediction_id}"
        event = {
            "event_id": event_ids[k],
            "event_time": priced.at,
            "schema_version": SCHEMA_VERSION,
            "prediction_id": prediction_id,
            "listing_id": listing_id,
            "user_id": request.user_id,
            "predicted_price": priced.prices[k],
            "model_name": model.name,
            "model_version": model.version,
            "variant": CHAMPION,
            "experiment_id": None,
            "features": dict(zip(names, values, strict=True)),
            "latency_ms": priced.latency_ms,
        }
        out.append((listing_id.encode(), orjson.dumps(event)))
    return out


def bodies(priced: Priced) -> list[dict[str, Any]]:
    """The response bodies (:class:`~serving.schemas.PredictionPublic`) as plain dicts.

    Plain Python per row: a handful of numpy calls on one row cost more than the row."""
    model, band, now = priced.model, priced.model.band, priced.at.timestamp()
    out = []
    for k, stamp in enumerate(priced.updated_at_us.tolist()):
        price, known = priced.prices[k], stamp == stamp  # not NaN
        out.append(
            {
                "prediction_id": priced.prediction_ids[k],
                "listing_id": priced.requests[k].listing_id,
                "price": price,
                "interval": None
                if band is None
                else {
                    "low": round(price * (1 + band.low)),
                    "high": round(price * (1 + band.high)),
                    "level": band.level,
                },
                "model_name": model.name,
                "model_version": model.version,
                "variant": CHAMPION,
                "features_updated_at": datetime.fromtimestamp(stamp / 1e6, UTC) if known else None,
                "feature_age_s": max(0.0, now - stamp / 1e6) if known else None,
                "degraded": bool(priced.degraded[k]),
                "degraded_reasons": priced.degraded[k],
                "latency_ms": priced.latency_ms,
            }
        )
    return out
