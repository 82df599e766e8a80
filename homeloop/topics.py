"""The topics of the design: names, partition counts and the event each carries."""

from __future__ import annotations

from dataclasses import dataclass

from homeloop.events import EVENT_TYPES, Event


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its design name (before the prefix), partitions and event type."""

    name: str
    partitions: int
    event: type[Event]
    key: str  # the event field the message key is taken from


# Keys are the listing id unless said otherwise, so one listing's events share a partition.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("listings", 4, EVENT_TYPES["listings"], "listing_id"),
    TopicSpec("predictions", 4, EVENT_TYPES["predictions"], "listing_id"),
    TopicSpec("user-events", 4, EVENT_TYPES["user-events"], "listing_id"),
    TopicSpec("retrain-requests", 1, EVENT_TYPES["retrain-requests"], "model_name"),
    TopicSpec("model-events", 1, EVENT_TYPES["model-events"], "model_name"),
    TopicSpec("alerts", 1, EVENT_TYPES["alerts"], "rule"),
    TopicSpec("monitoring", 1, EVENT_TYPES["monitoring"], "component"),
    TopicSpec("dead-letter", 1, EVENT_TYPES["dead-letter"], "source_topic"),
)

BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in TOPICS}


def message_key(event: Event) -> bytes:
    """The Kafka key for an event, taken from its topic's key field."""
    for spec in TOPICS:
        if isinstance(event, spec.event):
            return str(getattr(event, spec.key)).encode()
    raise TypeError(f"no topic carries {type(event).__name__}")


def topic_for(event: Event) -> str:
    """The design name of the topic that carries this kind of event."""
    for spec in TOPICS:
        if isinstance(event, spec.event):
            return spec.name
    raise TypeError(f"no topic carries {type(event).__name__}")
