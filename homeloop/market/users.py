"""Simulated users: they trust a price close to the truth, and act on it.

Trust = exp(−|shown − true| / true / 0.10): an exact price gives 1, a price 10% off
about 0.37, 20% off 0.14. Then P(click) = 0.15 + 0.45·trust, P(inquiry | click) =
0.10 + 0.30·trust, P(contract | inquiry) = 0.05 + 0.25·trust. A contract carries a deal
price drawn like any observed deal (true price × the market's noise).
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from uuid import UUID

import numpy as np

from homeloop.events import UserEvent
from homeloop.market.world import Listing, Market

TRUST_SCALE = 0.10


def trust(shown_price: float, true_price: float) -> float:
    return math.exp(-abs(shown_price - true_price) / true_price / TRUST_SCALE)


def funnel(t: float) -> tuple[float, float, float]:
    """P(click), P(inquiry | click), P(contract | inquiry) for a trust level."""
    return 0.15 + 0.45 * t, 0.10 + 0.30 * t, 0.05 + 0.25 * t


class UserModel:
    """A population of users with stable ids."""

    def __init__(self, seed: int, n_users: int = 5_000) -> None:
        self.n_users = n_users
        self._noise = np.random.default_rng(seed)

    def pick_user(self, rng: random.Random) -> str:
        return f"U{rng.randrange(self.n_users):05d}"

    def react(
        self,
        listing: Listing,
        *,
        shown_price: int,
        at: datetime,
        rng: random.Random,
        prediction_id: UUID | str | None,
        user_id: str,
        market: Market,
    ) -> list[UserEvent]:
        """What one user does after seeing ``shown_price`` for ``listing`` at ``at``."""
        true = market.true_price(listing, at)
        p_click, p_inquiry, p_contract = funnel(trust(shown_price, true))
        common = dict(
            event_time=at,
            user_id=user_id,
            listing_id=listing.listing_id,
            prediction_id=prediction_id,
        )
        events: list[UserEvent] = []
        if rng.random() >= p_click:
            return events
        events.append(UserEvent(type="click", **common))
        if rng.random() >= p_inquiry:
            return events
        events.append(UserEvent(type="inquiry", **common))
        if rng.random() < p_contract:
            price = int(market.observe([true], self._noise)[0])
            events.append(UserEvent(type="contract", contract_price=price, **common))
        return events
