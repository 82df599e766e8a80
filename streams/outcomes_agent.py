"""The outcome agents: predictions and user events in, the feedback loop's records out.

Two handlers, each behind its own :class:`~streams.batch_agent.BatchAgent` (their own
consumer groups, so they replay independently of the feature agents on the same
topics). Both store their batch before returning, so offsets are committed only after
the records are in the tables; a replay is absorbed by the tables' keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from homeloop.events import PredictionEvent, UserEvent
from homeloop.outcomes import exclusion, refusal
from homeloop.settings import Settings
from streams.batch_agent import Record
from streams.dead_letters import DeadLetters
from streams.decoding import Decoded, Rejected, decode_many
from streams.feedback import FeedbackLoop
from streams.metrics import EVENTS, OUTCOME_EVENTS


class PredictionsAgent:
    """``predictions`` → ``served_predictions`` and the drift monitors."""

    name = "feedback-predictions"
    max_in_flight = 1

    def __init__(self, settings: Settings, loop: FeedbackLoop, dead_letters: DeadLetters) -> None:
        self.topic = settings.topic("predictions")
        self._loop = loop
        self._dead_letters = dead_letters

    async def __call__(self, records: Sequence[Record]) -> None:
        decoded = decode_many([r.value for r in records], PredictionEvent)
        await self._dead_letters.send(
            [(r, d) for r, d in zip(records, decoded, strict=True) if isinstance(d, Rejected)]
        )
        events = [d.event for d in decoded if isinstance(d, Decoded)]
        await self._loop.store.add_predictions(events)
        EVENTS.labels(topic=self.topic, outcome="stored").inc(len(events))
        await self._loop.ready()  # the monitors are restored
        await self._loop.on_predictions(events)


class UserEventsAgent:
    """``user-events`` → ``outcome_events``, attributed; contracts → realized error."""

    name = "feedback-outcomes"
    max_in_flight = 1  # the watermark and the residual monitors see batches in order

    def __init__(self, settings: Settings, loop: FeedbackLoop, dead_letters: DeadLetters) -> None:
        self.topic = settings.topic("user-events")
        self._loop = loop
        self._dead_letters = dead_letters

    async def __call__(self, records: Sequence[Record]) -> None:
        loop = self._loop
        loop.rates.add("user-events", len(records))
        decoded = decode_many([r.value for r in records], UserEvent)
        refused: list[tuple[Record, Rejected]] = []
        kept: list[tuple[UserEvent, str | None]] = []
        counted: dict[int, list[datetime]] = {}  # per partition: the watermark's input
        now, late = loop.clock(), loop.lateness
        for record, item in zip(records, decoded, strict=True):
            if isinstance(item, Rejected):
                refused.append((record, item))
                continue
            reason = refusal(item.event)
            if reason is not None:
                refused.append((record, Rejected(reason, _why(item.event))))
                continue
            excluded = exclusion(item.event.event_time, loop.watermark, now, late)
            kept.append((item.event, excluded))
            times = counted.setdefault(record.partition, [])
            if excluded is None:
                times.append(item.event.event_time)
        await self._dead_letters.send(refused)
        new = await loop.store.add_events(kept)
        for event, excluded in kept:
            outcome = (excluded or "counted") if str(event.event_id) in new else "duplicate"
            OUTCOME_EVENTS.labels(type=event.type, outcome=outcome).inc()
        await loop.ready()  # the monitors are restored (the tables and dead letters need not wait)
        await loop.advance(counted)
        await loop.attribute()


def _why(event: UserEvent) -> str:
    return f"contract_price {event.contract_price}만원 is outside the plausible range"
