"""The simulated marketplace: complexes calibrated to real deals and a known true price.

True price (만원) = complex level per ㎡ × area × size factor × floor factor × age factor
× region index at time t. An observed deal is the true price × exp(ε), ε ~ N(0, σ²) with
σ = ``noise_sigma``, so the best achievable MAE is known: E|true·(e^ε − 1)| =
true · e^{σ²/2} · (2Φ(σ) − 1), which :meth:`Market.noise_floor_mae` computes in closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from homeloop.clock import SIM_START
from homeloop.events import MAX_PRICE_MANWON, MIN_PRICE_MANWON, ListingEvent
from homeloop.features import floor_penalty
from homeloop.market.calibration import load_calibration, place

# Simulation "now" starts right after the calibration window (deals to 2026-05).
DEFAULT_START = SIM_START
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # the calibration's reference date
YEAR_S = 365.25 * 24 * 3600
TREND_PER_YEAR = 0.02  # the whole market drifts up 2% a year
AGE_DEPRECIATION = 0.004  # per year of age beyond the building's age at the epoch
NOISE_SIGMA = 0.05


@dataclass(frozen=True, slots=True)
class Complex:
    complex_id: str
    region_code: str
    dong: str
    name: str
    lat: float
    lon: float
    build_year: int
    price_per_sqm: float  # 만원/㎡ at the epoch
    area_min: float
    area_max: float
    max_floor: int
    weight: float  # share of deals


@dataclass(frozen=True, slots=True)
class Listing:
    listing_id: str
    complex: Complex
    area_sqm: float
    floor: int
    asking_markup: float
    jeonse_ratio: float


@dataclass(frozen=True, slots=True)
class Shock:
    """A region's level moving by ``pct`` linearly over ``duration``, then staying there."""

    region_code: str
    pct: float
    start: datetime
    duration: timedelta

    def factor(self, seconds: NDArray[np.float64]) -> NDArray[np.float64]:
        start = (self.start - EPOCH).total_seconds()
        progress = np.clip((seconds - start) / self.duration.total_seconds(), 0.0, 1.0)
        return np.asarray(1.0 + self.pct * progress, dtype=np.float64)


def floor_factor(floor: ArrayLike, max_floor: ArrayLike) -> NDArray[np.float64]:
    """The market prices floors by the same rule the feature states (homeloop.features)."""
    return np.asarray(1.0 + floor_penalty(floor, max_floor))


def size_factor(area_sqm: ArrayLike) -> NDArray[np.float64]:
    """Larger flats cost a little less per ㎡ (elasticity −0.05 around 85 ㎡)."""
    return np.asarray(np.power(np.asarray(area_sqm, dtype=np.float64) / 85.0, -0.05))


@dataclass
class Market:
    """A seeded market: the same seed gives the same complexes, listings and deals."""

    seed: int = 42
    start: datetime = DEFAULT_START
    noise_sigma: float = NOISE_SIGMA
    complexes: list[Complex] = field(init=False)
    shocks: list[Shock] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        table = load_calibration()
        weights = table["deals"].to_numpy(dtype=np.float64)
        self.complexes = []
        for i, row in enumerate(table.itertuples(index=False)):
            lat, lon = place(row.region_code, row.dong, row.complex_name)
            self.complexes.append(
                Complex(
                    complex_id=f"C{i:04d}",
                    region_code=row.region_code,
                    dong=row.dong,
                    name=row.complex_name,
                    lat=lat,
                    lon=lon,
                    build_year=int(row.build_year),
                    price_per_sqm=float(row.price_per_sqm),
                    area_min=float(row.area_min),
                    area_max=float(max(row.area_max, row.area_min + 1.0)),
                    max_floor=int(row.max_floor),
                    weight=float(weights[i] / weights.sum()),
                )
            )
        self._weights = np.array([c.weight for c in self.complexes])
        self._position = {c.complex_id: i for i, c in enumerate(self.complexes)}
        self._listings: dict[str, Listing] = {}
        self._next_id = 0

    # --- the true price -------------------------------------------------------------
    def region_index(self, region_codes: ArrayLike, at_seconds: ArrayLike) -> NDArray[np.float64]:
        """Market level relative to the epoch: the trend times any shocks of the region."""
        regions = np.asarray(region_codes)
        seconds = np.asarray(at_seconds, dtype=np.float64)
        index = 1.0 + TREND_PER_YEAR * seconds / YEAR_S
        for shock in self.shocks:
            index = np.where(regions == shock.region_code, index * shock.factor(seconds), index)
        return np.asarray(index, dtype=np.float64)

    def true_prices(
        self,
        complex_idx: ArrayLike,
        area_sqm: ArrayLike,
        floor: ArrayLike,
        at_seconds: ArrayLike,
    ) -> NDArray[np.float64]:
        """Vectorised true prices (만원); ``at_seconds`` counts from :data:`EPOCH`."""
        idx = np.asarray(complex_idx, dtype=np.int64)
        level = np.array([c.price_per_sqm for c in self.complexes])[idx]
        built = np.array([c.build_year for c in self.complexes])[idx]
        top = np.array([c.max_floor for c in self.complexes])[idx]
        regions = np.array([c.region_code for c in self.complexes])[idx]
        seconds = np.asarray(at_seconds, dtype=np.float64)
        area = np.asarray(area_sqm, dtype=np.float64)
        years_since_epoch = seconds / YEAR_S
        aged = np.maximum(0.0, (EPOCH.year - built) + years_since_epoch) - np.maximum(
            0.0, EPOCH.year - built
        )
        age = 1.0 - AGE_DEPRECIATION * aged
        return np.asarray(
            level
            * area
            * size_factor(area)
            * floor_factor(floor, top)
            * age
            * self.region_index(regions, seconds),
            dtype=np.float64,
        )

    def true_price(self, listing: Listing, at: datetime) -> float:
        idx = self._position[listing.complex.complex_id]
        seconds = (at - EPOCH).total_seconds()
        return float(self.true_prices([idx], [listing.area_sqm], [listing.floor], [seconds])[0])

    def observe(self, true_price: ArrayLike, rng: np.random.Generator) -> NDArray[np.int64]:
        """Deal prices: the true price with the known noise, integer 만원 in the valid range."""
        true = np.asarray(true_price, dtype=np.float64)
        noisy = true * np.exp(rng.normal(0.0, self.noise_sigma, size=true.shape))
        return np.asarray(
            np.clip(np.round(noisy), MIN_PRICE_MANWON, MAX_PRICE_MANWON), dtype=np.int64
        )

    def noise_floor_mae(self, true_prices: ArrayLike) -> float:
        """The MAE of a perfect model (one that predicts the true price) on these deals."""
        s = self.noise_sigma
        mean_abs = math.exp(s * s / 2) * (2 * norm.cdf(s) - 1)
        return float(np.mean(np.asarray(true_prices, dtype=np.float64)) * mean_abs)

    def shock(
        self,
        region_code: str,
        pct: float = -0.10,
        start: datetime | None = None,
        duration: timedelta = timedelta(days=90),
    ) -> Shock:
        """Make a region's level move by ``pct`` over ``duration`` (default: −10% in 3 months)."""
        if region_code not in {c.region_code for c in self.complexes}:
            raise ValueError(f"no complexes in region {region_code}")
        shock = Shock(region_code, pct, start or self.start, duration)
        self.shocks.append(shock)
        return shock

    # --- listings --------------------------------------------------------------------
    def sample_units(
        self, n: int, rng: np.random.Generator
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
        """``n`` (complex index, area, floor) draws, complexes weighted by their deals."""
        idx = rng.choice(len(self.complexes), size=n, p=self._weights)
        lo = np.array([c.area_min for c in self.complexes])[idx]
        hi = np.array([c.area_max for c in self.complexes])[idx]
        top = np.array([c.max_floor for c in self.complexes])[idx]
        area = np.round(rng.uniform(lo, hi), 2)
        floor = rng.integers(1, top + 1)
        return idx, area, floor

    def new_listing(self, at: datetime) -> ListingEvent:
        """A new listing on the market, as its ``listings`` event."""
        idx, area, floor = self.sample_units(1, self.rng)
        listing = Listing(
            listing_id=f"L{self._next_id:07d}",
            complex=self.complexes[int(idx[0])],
            area_sqm=float(area[0]),
            floor=int(floor[0]),
            asking_markup=float(self.rng.normal(1.03, 0.03)),
            jeonse_ratio=float(self.rng.uniform(0.55, 0.70)),
        )
        self._next_id += 1
        self._listings[listing.listing_id] = listing
        return self.listing_event(listing, at)

    def listing(self, listing_id: str) -> Listing:
        return self._listings[listing_id]

    def listing_event(self, listing: Listing, at: datetime) -> ListingEvent:
        true = self.true_price(listing, at)
        c = listing.complex
        return ListingEvent(
            event_time=at,
            listing_id=listing.listing_id,
            complex_id=c.complex_id,
            region_code=c.region_code,
            dong=c.dong,
            lat=c.lat,
            lon=c.lon,
            area_sqm=listing.area_sqm,
            floor=listing.floor,
            build_year=c.build_year,
            asking_price=round(true * listing.asking_markup),
            jeonse_price=round(true * listing.jeonse_ratio),
            status="listed",
            source="simulator",
        )
