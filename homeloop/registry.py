"""Conventions of the model registry shared by training and serving.

One registered model for price; aliases carry the lifecycle (``challenger`` in staging,
``champion`` in production). Each version carries its exact feature list as a tag, so
serving feeds it the columns it was trained on, in order.
"""

from __future__ import annotations

import json
from typing import Literal

Alias = Literal["champion", "challenger"]
CHAMPION: Alias = "champion"
CHALLENGER: Alias = "challenger"

EXPERIMENT = "homeloop-price"
FEATURES_TAG = "homeloop.features"
TARGET_TAG = "homeloop.target"
FLAVOR_TAG = "homeloop.flavor"
TEST_MAE_TAG = "homeloop.test_mae"
CANDIDATE_TAG = "homeloop.candidate"
INTERVAL_TAG = "homeloop.interval"


def model_uri(model_name: str, alias: Alias = CHAMPION) -> str:
    return f"models:/{model_name}@{alias}"


def encode_features(features: tuple[str, ...] | list[str]) -> str:
    return json.dumps(list(features))


def decode_features(tag: str) -> tuple[str, ...]:
    value = json.loads(tag)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"feature tag is not a list of names: {tag!r}")
    return tuple(value)
