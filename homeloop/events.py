"""Typed event contracts for every topic; every producer and consumer imports these.

JSON on the wire, UTF-8. Every event carries ``event_id`` (UUID, the idempotency key),
``event_time`` (UTC) and ``schema_version``. Prices are integers in 만원, areas in ㎡.
The JSON Schemas in ``schemas/`` are generated from these models (``homeloop schemas``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Self
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

# Plausibility bounds shared by producers and consumers (the design's validation range).
MIN_PRICE_MANWON = 1_000
MAX_PRICE_MANWON = 500_000

Price = int  # 만원


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Fields every event has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID = Field(default_factory=uuid4, description="Unique id; consumers dedupe on it")
    event_time: AwareDatetime = Field(default_factory=utcnow, description="When it happened (UTC)")
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)

    @field_validator("event_time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Self:
        return cls.model_validate_json(raw)


ListingStatus = Literal["listed", "updated", "delisted"]


class ListingEvent(Event):
    """A listing appeared, changed or left the marketplace (topic ``listings``)."""

    listing_id: str = Field(min_length=1, max_length=64)
    complex_id: str = Field(min_length=1, max_length=64)
    region_code: str = Field(pattern=r"^\d{5}$", description="5-digit 시군구 code (LAWD_CD)")
    dong: str = Field(min_length=1, max_length=64, description="법정동 name")
    lat: float | None = Field(default=None, ge=33.0, le=39.0)
    lon: float | None = Field(default=None, ge=124.0, le=132.0)
    area_sqm: float = Field(gt=0, le=1_000, description="전용면적, ㎡")
    floor: int = Field(ge=-5, le=150)
    build_year: int = Field(ge=1900, le=2100)
    asking_price: Price | None = Field(default=None, ge=0, description="만원")
    jeonse_price: Price | None = Field(default=None, ge=0, description="전세 deposit, 만원")
    status: ListingStatus = "listed"
    source: str = Field(default="inhouse", min_length=1, max_length=32)


# A listing's own attributes in one order, for tables and frames built from listing events.
LISTING_ATTRIBUTES: tuple[str, ...] = (
    "listing_id",
    "complex_id",
    "region_code",
    "dong",
    "lat",
    "lon",
    "area_sqm",
    "floor",
    "build_year",
    "asking_price",
    "jeonse_price",
    "status",
)


Variant = Literal["champion", "challenger", "smoke"]


class PredictionEvent(Event):
    """A price was served (topic ``predictions``); the features make it reproducible."""

    prediction_id: UUID
    listing_id: str
    user_id: str | None = None
    predicted_price: Price
    model_name: str
    model_version: str
    variant: Variant = "champion"
    experiment_id: str | None = None
    features: dict[str, float | None]
    latency_ms: float = Field(ge=0)


UserEventType = Literal["click", "inquiry", "contract"]


class UserEvent(Event):
    """A click, inquiry or contract from the apps (topic ``user-events``).

    Contracts carry the real price: they are the labels that close the loop.
    """

    type: UserEventType
    user_id: str = Field(min_length=1)
    listing_id: str = Field(min_length=1)
    prediction_id: UUID | None = Field(default=None, description="The prediction the user saw")
    contract_price: Price | None = Field(default=None, ge=0, description="만원; contracts only")

    @model_validator(mode="after")
    def _price_only_on_contracts(self) -> Self:
        if self.type == "contract" and self.contract_price is None:
            raise ValueError("a contract needs contract_price")
        if self.type != "contract" and self.contract_price is not None:
            raise ValueError(f"contract_price is only for contracts, not {self.type}")
        return self


RetrainReason = Literal["schedule", "manual", "drift", "mae_degradation", "data_growth"]


class RetrainRequest(Event):
    """A reason to retrain (topic ``retrain-requests``, keyed by model name)."""

    model_name: str
    reason: RetrainReason
    evidence: dict[str, Any] = Field(default_factory=dict)
    requested_by: str = "system"


ModelAction = Literal[
    "registered",
    "staged",
    "experiment_started",
    "promoted",
    "switched",
    "rolled_back",
    "archived",
    "rejected",
]


class ModelEvent(Event):
    """Registry and deployment history (topic ``model-events``)."""

    action: ModelAction
    model_name: str
    version: str | None = None
    previous_version: str | None = None
    alias: str | None = None
    reason: str = ""
    actor: str = "system"
    details: dict[str, Any] = Field(default_factory=dict)


Priority = Literal["P0", "P1", "P2", "P3"]


class AlertEvent(Event):
    """An alert fired or resolved (topic ``alerts``)."""

    priority: Priority
    rule: str
    state: Literal["firing", "resolved"] = "firing"
    value: float | None = None
    threshold: float | None = None
    action: str = ""
    message: str = ""
    source: str = ""


class MonitoringEvent(Event):
    """A periodic live snapshot for operators (topic ``monitoring``)."""

    component: str
    interval_s: float = Field(gt=0)
    metrics: dict[str, float | int | None] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class DeadLetterEvent(Event):
    """An event a consumer could not process, kept whole with the reason (topic ``dead-letter``)."""

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = Field(default=None, description="The message key, decoded as UTF-8")
    raw: str = Field(description="The message value, base64")
    error: str
    consumer: str


# Topic name (before prefix) -> event model. The single source for topics and JSON Schemas.
EVENT_TYPES: dict[str, type[Event]] = {
    "listings": ListingEvent,
    "predictions": PredictionEvent,
    "user-events": UserEvent,
    "retrain-requests": RetrainRequest,
    "model-events": ModelEvent,
    "alerts": AlertEvent,
    "monitoring": MonitoringEvent,
    "dead-letter": DeadLetterEvent,
}
