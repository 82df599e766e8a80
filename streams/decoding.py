"""Deliberate decoding: a bad message becomes a dead letter with a reason, never a crash.

faust's own JSON decoding stops an agent on the first value it cannot decode
(``ValueDecodeError``), so topics are read as raw bytes and decoded here.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from homeloop.events import DeadLetterEvent, Event

E = TypeVar("E", bound=Event)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a message could not be decoded: a short reason code and the detail."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Decoded(Generic[E]):
    event: E


def decode(raw: bytes | None, model: type[E]) -> Decoded[E] | Rejected:
    """Parse and validate one message value as ``model``."""
    if raw is None or raw == b"":
        return Rejected("empty", "message has no value")
    try:
        return Decoded(model.model_validate_json(raw))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            return Rejected("not_json", errors[0]["msg"])
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:5]
        )
        return Rejected("invalid", fields)


@cache
def _list_adapter(model: type[E]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def decode_many(raws: Sequence[bytes | None], model: type[E]) -> list[Decoded[E] | Rejected]:
    """:func:`decode` for a batch: one validation call for all (about 2x faster per event),
    falling back to one call per message when any of them is bad.

    The batch is validated as one JSON array, so a value that is not exactly one JSON
    object (empty, or ``{..},{..}``) shows up as a count mismatch and takes the slow path.
    """
    if raws and all(raws):
        try:
            events = _list_adapter(model).validate_json(b"[" + b",".join(raws) + b"]")  # type: ignore[arg-type]
        except ValidationError:
            pass
        else:
            if len(events) == len(raws):
                return [Decoded(event) for event in events]
    return [decode(raw, model) for raw in raws]


def dead_letter(
    *,
    rejected: Rejected,
    raw: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int | None,
    offset: int | None,
    consumer: str,
) -> DeadLetterEvent:
    """The dead-letter event that keeps the original bytes and says why they were refused."""
    return DeadLetterEvent(
        source_topic=topic,
        partition=partition,
        offset=offset,
        key=key.decode("utf-8", "replace") if key is not None else None,
        raw=base64.b64encode(raw or b"").decode("ascii"),
        error=f"{rejected.reason}: {rejected.detail}",
        consumer=consumer,
    )
