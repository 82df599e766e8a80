"""Deliberate decoding: a bad message becomes a dead letter with a reason, never a crash.

faust's own JSON decoding stops an agent on the first value it cannot decode
(``ValueDecodeError``), so topics are read as raw bytes and decoded here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import ValidationError

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
