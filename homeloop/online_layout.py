"""The Feast Redis online store's own layout, so hot paths can read and write it directly.

Key: the serialized entity key (version 3) followed by the project name. Hash fields:
murmur3 of ``"<view>:<feature>"`` → a serialized ``feast.types.Value``, and ``_ts:<view>``
→ a serialized ``google.protobuf.Timestamp`` of the event time. Feast's own helpers build
the key and field names, and a parity test checks byte equality with Feast's writer, so a
Feast upgrade that changes the layout fails the suite rather than the readers.
"""

from __future__ import annotations

import math
from datetime import datetime

from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

ENTITY_KEY_VERSION = 3


def entity_key(project: str, join_key: str, value: str) -> bytes:
    proto = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])
    return bytes(_redis_key(project, proto, ENTITY_KEY_VERSION))


def field(view: str, feature: str) -> bytes:
    return bytes(_mmh3(f"{view}:{feature}"))


def timestamp_field(view: str) -> str:
    return f"_ts:{view}"


def encode(value: float | int | str | None) -> bytes:
    """A feature value as Feast stores it; ``None`` and NaN as the empty (missing) value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Value().SerializeToString()
    if isinstance(value, str):
        return Value(string_val=value).SerializeToString()
    return Value(double_val=float(value)).SerializeToString()


def decode(raw: bytes | None) -> float | str | None:
    if raw is None:
        return None
    value = Value.FromString(raw)
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    result: float | str = getattr(value, kind)
    return result


def encode_time(at: datetime) -> bytes:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts.SerializeToString()


def decode_time_nanos(raw: bytes | None) -> int:
    if not raw:
        return 0
    ts = Timestamp.FromString(raw)
    return ts.seconds * 1_000_000_000 + ts.nanos
