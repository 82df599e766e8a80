"""The market simulator: deterministic, calibrated, with known noise, shocks and users."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest

from homeloop.events import ListingEvent, UserEvent
from homeloop.market import Market, SimClock, UserModel, deal_history
from homeloop.market.calibration import load_calibration
from homeloop.market.users import funnel, trust
from homeloop.market.world import EPOCH, floor_factor


def history(market: Market, n: int = 20_000, seed: int = 1):  # type: ignore[no-untyped-def]
    return deal_history(market, n, market.start - timedelta(days=365), market.start, seed=seed)


def test_calibration_reflects_the_real_regions() -> None:
    table = load_calibration()
    levels = table.groupby("region_code")["price_per_sqm"].median()
    assert set(levels.index) == {"41131", "41133", "41135"}
    assert levels["41135"] > levels["41131"] > levels["41133"]  # 분당 > 수정 > 중원
    assert (table["deals"] >= 5).all()


def test_same_seed_same_market_and_history() -> None:
    a, b, c = Market(seed=7), Market(seed=7), Market(seed=8)
    assert [a.new_listing(a.start).model_dump(exclude={"event_id"}) for _ in range(5)] == [
        b.new_listing(b.start).model_dump(exclude={"event_id"}) for _ in range(5)
    ]
    assert history(a, 1_000).equals(history(b, 1_000))
    assert not history(a, 1_000, seed=1).equals(history(c, 1_000, seed=2))


def test_listing_events_are_valid_and_priced_near_the_truth() -> None:
    market = Market(seed=3)
    events = [market.new_listing(market.start) for _ in range(200)]
    assert all(isinstance(e, ListingEvent) for e in events)
    assert len({e.listing_id for e in events}) == 200
    ratios = [
        (e.asking_price or 0) / market.true_price(market.listing(e.listing_id), market.start)
        for e in events
    ]
    assert 1.0 < float(np.mean(ratios)) < 1.06


def test_observed_noise_and_noise_floor_are_what_is_stated() -> None:
    market = Market(seed=1)
    deals = history(market, 100_000)
    log_noise = np.log(deals["price"] / deals["true_price"])
    assert float(np.std(log_noise)) == pytest.approx(market.noise_sigma, rel=0.03)
    oracle_mae = float(np.mean(np.abs(deals["price"] - deals["true_price"])))
    assert oracle_mae == pytest.approx(market.noise_floor_mae(deals["true_price"]), rel=0.02)


def test_vectorised_and_scalar_true_prices_agree() -> None:
    market = Market(seed=5)
    event = market.new_listing(market.start)
    listing = market.listing(event.listing_id)
    at = market.start + timedelta(days=40)
    idx = market.complexes.index(listing.complex)
    vector = market.true_prices(
        [idx], [listing.area_sqm], [listing.floor], [(at - EPOCH).total_seconds()]
    )
    assert market.true_price(listing, at) == vector[0]


def test_shock_lowers_only_its_region_by_ten_percent_in_three_months() -> None:
    plain, shocked = Market(seed=2), Market(seed=2)
    shocked.shock("41135", -0.10, start=shocked.start, duration=timedelta(days=90))
    late = (shocked.start + timedelta(days=120) - EPOCH).total_seconds()
    mid = (shocked.start + timedelta(days=45) - EPOCH).total_seconds()
    for i, c in enumerate(plain.complexes):
        before = plain.true_prices([i], [84.0], [5], [late])[0]
        after = shocked.true_prices([i], [84.0], [5], [late])[0]
        halfway = (
            shocked.true_prices([i], [84.0], [5], [mid])[0]
            / plain.true_prices([i], [84.0], [5], [mid])[0]
        )
        if c.region_code == "41135":
            assert after / before == pytest.approx(0.90)
            assert halfway == pytest.approx(0.95)
        else:
            assert after == before
    with pytest.raises(ValueError, match="no complexes"):
        plain.shock("11110")


def test_floor_rule() -> None:
    factors = floor_factor([1, 2, 5, 14, 15], [15] * 5)
    assert list(factors) == [0.92, 0.96, 1.0, 1.03, 0.97]


def test_users_trust_accurate_prices_more() -> None:
    assert trust(100, 100) == 1.0 and trust(80, 100) < trust(95, 100) < 1.0
    market = Market(seed=4)
    users = UserModel(seed=4)
    listing = market.listing(market.new_listing(market.start).listing_id)
    true = market.true_price(listing, market.start)

    def contracts(shown: float, seed: int) -> int:
        rng = random.Random(seed)
        total = 0
        for _ in range(20_000):
            events = users.react(
                listing,
                shown_price=round(shown),
                at=market.start,
                rng=rng,
                prediction_id=None,
                user_id="U1",
                market=market,
            )
            assert all(isinstance(e, UserEvent) for e in events)
            total += sum(e.type == "contract" for e in events)
        return total

    accurate, off = contracts(true, 1), contracts(true * 0.8, 1)
    p_click, p_inq, p_con = funnel(1.0)
    assert accurate == pytest.approx(20_000 * p_click * p_inq * p_con, rel=0.2)
    assert accurate > 2 * off


def test_clock_compresses_a_week_into_a_minute() -> None:
    market = Market(seed=1)
    clock = SimClock(market.start, time_scale=10_080, running=False)
    clock.advance(60)
    assert clock.now() - market.start == timedelta(days=7)
