"""Request and response models of the prediction API, split by role.

Ranges on the attributes are those of the ``listings`` event (:class:`ListingEvent`), so a
listing the streams would accept is one the API accepts, and a value outside them is a 422
that names the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from homeloop.events import ListingEvent, Variant

_EVENT = ListingEvent.model_fields


class ListingAttributes(BaseModel):
    """A listing the online store may not know yet, described in the request."""

    model_config = ConfigDict(extra="forbid")

    complex_id: str = _EVENT["complex_id"]  # type: ignore[assignment]
    region_code: str = _EVENT["region_code"]  # type: ignore[assignment]
    dong: str = _EVENT["dong"]  # type: ignore[assignment]
    lat: float | None = _EVENT["lat"]  # type: ignore[assignment]
    lon: float | None = _EVENT["lon"]  # type: ignore[assignment]
    area_sqm: float = _EVENT["area_sqm"]  # type: ignore[assignment]
    floor: int = _EVENT["floor"]  # type: ignore[assignment]
    build_year: int = _EVENT["build_year"]  # type: ignore[assignment]
    asking_price: int | None = Field(default=None, ge=0, le=10_000_000, description="만원")


class PredictionRequest(BaseModel):
    """One listing: by id (features from the online store) or by its attributes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"listing_id": "L000123", "user_id": "U42"},
                {
                    "listing": {
                        "complex_id": "41135-0001", "region_code": "41135", "dong": "정자동",
                        "area_sqm": 84.97, "floor": 11, "build_year": 2004,
                    }
                },
            ]
        },
    )  # fmt: skip

    listing_id: str | None = Field(default=None, min_length=1, max_length=64)
    listing: ListingAttributes | None = Field(
        default=None, description="Attributes of a listing the store does not know yet"
    )
    user_id: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _id_or_attributes(self) -> Self:
        if self.listing_id is None and self.listing is None:
            raise ValueError("give listing_id (a listing the store knows) or listing attributes")
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[PredictionRequest] = Field(min_length=1)


class Interval(BaseModel):
    low: int = Field(description="만원")
    high: int = Field(description="만원")
    level: float = Field(description="Share of validation deals inside the band")


class Contribution(BaseModel):
    feature: str
    description: str = Field(description="The feature in plain words")
    value: float | None = Field(description="The feature's value for this listing")
    contribution: int = Field(description="Its share of the price, 만원 (TreeSHAP)")


class PredictionPublic(BaseModel):
    prediction_id: UUID
    listing_id: str | None
    price: int = Field(description="Predicted fair sale price, 만원")
    interval: Interval | None = Field(
        description="Error band from the model's validation residuals (null for old models)"
    )
    model_name: str
    model_version: str
    variant: Variant
    features_updated_at: datetime | None = Field(
        description="Event time of the listing's features in the online store"
    )
    feature_age_s: float | None
    degraded: bool = Field(description="Something had to be filled in; see degraded_reasons")
    degraded_reasons: list[str]
    explanation: list[Contribution] | None = None
    latency_ms: float


class BatchError(BaseModel):
    index: int
    listing_id: str | None
    status: int
    detail: str


class BatchPublic(BaseModel):
    predictions: list[PredictionPublic]
    errors: list[BatchError]


class ModelSlotPublic(BaseModel):
    slot: str
    model_name: str
    version: str
    flavor: str
    compiled: bool = Field(
        description="Predicting through its trees compiled to machine code (same answers)"
    )
    target: str
    features: list[str]
    traffic_share: float
    loaded_at: datetime


class ModelsPublic(BaseModel):
    models: list[ModelSlotPublic]
    traffic: dict[str, float]


class ReloadPublic(BaseModel):
    slot: str
    version: str
    previous_version: str | None


class Problem(BaseModel):
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, Literal["ok", "failing"]]
    details: dict[str, str] = Field(default_factory=dict)
