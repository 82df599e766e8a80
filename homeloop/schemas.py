"""JSON Schemas for external producers, generated from the event models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeloop.events import EVENT_TYPES

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def event_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, one per topic."""
    out: dict[str, dict[str, Any]] = {}
    for topic, model in EVENT_TYPES.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://homeloop.example/schemas/{topic}.schema.json"
        schema["x-topic"] = topic
        out[f"{topic}.schema.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in event_schemas().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of checked-in schema files that differ from the models (or are missing)."""
    stale = []
    for name, schema in event_schemas().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != render(schema):
            stale.append(name)
    return stale
