"""What users did after a price was shown: the stated rules of the feedback loop.

**Attribution.** A click, inquiry or contract belongs to the prediction the user saw:
1. the ``prediction_id`` it carries, once that prediction is known (it travels on another
   topic and may arrive later: it is waited for up to ``attribution_wait_s`` of wall time);
2. otherwise (no id, or the id never arrived) the newest prediction of the same listing
   for the same user, at or before the event and at most the attribution window earlier;
3. otherwise none, once the wait is over (predictions may arrive after the events they
   caused): the event is counted as unattributed, and a contract is still a label.
An event counts for a prediction only within the attribution window after it.

**Event time.** Windows are in event time, by a watermark: the newest counted event time
of the slowest partition not yet read to its end (:class:`Watermark`). An event dated more than
``max_lateness`` after *now* (the event clock: the wall clock, or a simulation's) is
*future*, a wrong clock, and cannot move the watermark; one more than ``max_lateness``
behind the watermark is *late*. Both are stored but left out of rates and error, so a
reported cohort does not change after the fact (a late contract is still a label; a
future-dated one is not).

**Contracts.** Prices outside the design's 1,000–500,000만원 are refused (dead letters).
A contract more than 3× off its prediction in either direction is *suspect* (a typo, a
different unit): stored, but neither a realized error nor a label. The same ``event_id``
twice is one event. Rates count predictions, not events: two contracts on one prediction
are one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from homeloop.events import MAX_PRICE_MANWON, MIN_PRICE_MANWON, UserEvent

SUSPECT_RATIO = 3.0
MAE_WINDOW = timedelta(days=7)


def refusal(event: UserEvent) -> str | None:
    """Why a user event cannot be used at all, or None."""
    price = event.contract_price
    if price is not None and not MIN_PRICE_MANWON <= price <= MAX_PRICE_MANWON:
        return "implausible_price"
    return None


def is_suspect(contract_price: float, predicted_price: float) -> bool:
    """A contract too far from its prediction to be the same kind of price."""
    if predicted_price <= 0:
        return True
    ratio = contract_price / predicted_price
    return not 1 / SUSPECT_RATIO <= ratio <= SUSPECT_RATIO


def exclusion(
    at: datetime, watermark: datetime | None, now: datetime, max_lateness: timedelta
) -> str | None:
    """``"future"``, ``"late"`` or None (it counts), for an event dated ``at``."""
    if at > now + max_lateness:
        return "future"
    if watermark is not None and at < watermark - max_lateness:
        return "late"
    return None


@dataclass
class Watermark:
    """Event-time progress of a partitioned stream: the newest counted event of its slowest
    partition that still has records to read, never moving backwards.

    Partitions are read at different speeds (a worker catching up on a backlog may read one
    weeks ahead of another), so the newest event overall would make the slower partitions'
    events look late. A partition read to its end stops holding the watermark back; when
    all are, the newest event of all stands.
    """

    value: datetime | None = None
    _newest: dict[int, datetime] = field(default_factory=dict)

    def update(self, partition: int, times: list[datetime]) -> None:
        """Counted events of one partition."""
        if times:
            newest = max(times)
            seen = self._newest.get(partition)
            self._newest[partition] = max(newest, seen) if seen else newest

    def current(self, assigned: Collection[int], caught_up: Collection[int]) -> datetime | None:
        """The watermark, given the partitions read and those read to their end. A partition
        with records left whose events were not seen yet holds it where it is."""
        behind = [p for p in assigned if p not in caught_up]
        if any(p not in self._newest for p in behind) or not self._newest:
            return self.value
        times = [self._newest[p] for p in behind] if behind else self._newest.values()
        mark = min(times) if behind else max(times)
        self.value = mark if self.value is None else max(self.value, mark)
        return self.value


@dataclass(frozen=True, slots=True)
class RealizedError:
    """One contract against the prediction its user saw."""

    prediction_id: str
    model_version: str
    variant: str
    region_code: str | None
    predicted_price: int
    contract_price: int
    event_time: datetime

    @property
    def residual(self) -> float:
        """Relative: what the residual monitors take (scale-free across price levels)."""
        return self.contract_price / self.predicted_price - 1.0

    @property
    def abs_error(self) -> int:
        return abs(self.contract_price - self.predicted_price)


@dataclass(frozen=True, slots=True)
class VariantOutcomes:
    """Counts for one (variant, model version): rates use only mature predictions."""

    variant: str
    model_version: str
    predictions_mature: int
    predictions_pending: int
    clicked: int
    inquired: int
    contracted: int
    contract_amount_sum: float
    predictions_last_day: int
    mae_7d: float | None
    contracts_7d: int

    def rate(self, count: int) -> float | None:
        return count / self.predictions_mature if self.predictions_mature else None

    def as_metrics(self) -> dict[str, float | int | None]:
        avg = self.contract_amount_sum / self.contracted if self.contracted else None
        return {
            "click_through_rate": self.rate(self.clicked),
            "inquiry_rate": self.rate(self.inquired),
            "contract_rate": self.rate(self.contracted),
            "avg_contract_amount": avg,
            "predictions_per_day": self.predictions_last_day,
            "predictions_mature": self.predictions_mature,
            "predictions_pending": self.predictions_pending,
            "mae_7d": self.mae_7d,
            "contracts_7d": self.contracts_7d,
        }
