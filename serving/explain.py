"""Explanations: which features moved this price, by how much, in 만원 and plain words.

Off the hot path: TreeSHAP runs only when a request asks (``?explain=true``).
"""

from __future__ import annotations

import math

import numpy as np

from homeloop.price_model import PriceModel
from serving.schemas import Contribution

TOP = 5

PLAIN_WORDS = {
    "area_sqm": "floor area (전용면적, ㎡)",
    "floor": "floor the flat is on",
    "floor_penalty": "floor premium or discount (ground and top floors cheaper)",
    "building_age": "age of the building (years)",
    "subway_distance_m": "distance to the nearest subway station (m)",
    "school_score": "schools within 1 km, weighted",
    "asking_price_per_pyeong": "asking price per 평 (만원)",
    "lat": "location: latitude",
    "lon": "location: longitude",
    "avg_price_3m": "market price per ㎡ over the last 3 months (만원)",
    "price_change_pct": "market price change over the last 3 months (%)",
    "jeonse_ratio": "전세 deposit as a share of the sale price",
    "price_per_pyeong": "market price per 평 (만원)",
    "deals_3m": "deals in the market over the last 3 months",
    "clicks_1h": "clicks on the listing in the last hour",
    "clicks_24h": "clicks on the listing in the last day",
    "clicks_7d": "clicks on the listing in the last week",
    "inquiries_1h": "inquiries about the listing in the last hour",
    "inquiries_24h": "inquiries about the listing in the last day",
    "inquiries_7d": "inquiries about the listing in the last week",
}


def explain(model: PriceModel, rows: np.ndarray, top: int = TOP) -> list[list[Contribution]]:
    """For each row, the ``top`` features with the largest contributions in 만원."""
    contributions = model.contributions(rows)[:, :-1]
    out = []
    for row, contrib in zip(rows, contributions, strict=True):
        order = np.argsort(-np.abs(contrib))[:top]
        out.append(
            [
                Contribution(
                    feature=model.features[j],
                    description=PLAIN_WORDS.get(model.features[j], model.features[j]),
                    value=None if math.isnan(row[j]) else float(row[j]),
                    contribution=round(float(contrib[j])),
                )
                for j in order
            ]
        )
    return out
