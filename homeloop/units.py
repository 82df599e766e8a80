"""Units at the edges: prices in 만원 (integers), areas in ㎡, 1 평 = 3.3058 ㎡."""

from __future__ import annotations

SQM_PER_PYEONG = 3.3058


def sqm_to_pyeong(area_sqm: float) -> float:
    return area_sqm / SQM_PER_PYEONG


def price_per_pyeong(price_manwon: float, area_sqm: float) -> float:
    """만원 per 평, the figure Korean listings quote."""
    return price_manwon / sqm_to_pyeong(area_sqm)


def to_manwon(value: float) -> int:
    """Round a model output to the integer 만원 used at every edge."""
    return round(value)
