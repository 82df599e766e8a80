"""Request and response models of the prediction API, split by role."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from homeloop.events import Variant


class PredictionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listing_id: str = Field(min_length=1, max_length=64, examples=["L000123"])
    user_id: str | None = Field(default=None, min_length=1, max_length=64)


class PredictionPublic(BaseModel):
    prediction_id: UUID
    listing_id: str
    price: int = Field(description="Predicted fair sale price, 만원")
    model_name: str
    model_version: str
    variant: Variant
    latency_ms: float


class ModelSlotPublic(BaseModel):
    slot: str
    model_name: str
    version: str
    features: list[str]
    traffic_share: float


class ModelsPublic(BaseModel):
    models: list[ModelSlotPublic]


class Problem(BaseModel):
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, Literal["ok", "failing"]]
    details: dict[str, str] = Field(default_factory=dict)
