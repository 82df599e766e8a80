"""The Feast Redis online store's own layout, so hot paths can read and write it directly.

Key: the serialized entity key (version 3) followed by the project name. Hash fields:
murmur3 of ``"<view>:<feature>"`` → a serialized ``feast.types.Value``, and ``_ts:<view>``
→ a serialized ``google.protobuf.Timestamp`` of the event time. Feast's own helpers build
the key and field names, and a parity test checks byte equality with Feast's writer, so a
Feast upgrade that changes the layout fails the suite rather than the readers.
"""

from __future__ import annotations

import math
import struct
from datetime import datetime
from functools import lru_cache

from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

ENTITY_KEY_VERSION = 3
# ``feast.types.Value`` with only ``double_val`` (field 5, fixed64) set: tag byte + 8 bytes.
_DOUBLE_TAG = bytes([5 << 3 | 1])
_MISSING = b""


@lru_cache(maxsize=262_144)
def entity_key(project: str, join_key: str, value: str) -> bytes:
    """The Redis key of one entity (cached: hot entities are keyed once)."""
    proto = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])
    return bytes(_redis_key(project, proto, ENTITY_KEY_VERSION))


def micros_field(view: str) -> str:
    """homeloop's own field beside Feast's: the event time in µs, for compare-and-set in Lua.

    Feast reads only the fields it asks for, so an extra field is invisible to it.
    """
    return f"_tsu:{view}"


def encode_double(value: float) -> bytes:
    """:func:`encode` for a float, without building a protobuf message (the hot path)."""
    if value != value:  # NaN
        return _MISSING
    return _DOUBLE_TAG + struct.pack("<d", value)


def decode_double(raw: bytes | None) -> float:
    """A stored double, NaN when missing; falls back to protobuf for any other encoding."""
    if not raw:
        return math.nan
    if len(raw) == 9 and raw[0] == _DOUBLE_TAG[0]:
        return float(struct.unpack_from("<d", raw, 1)[0])
    value = decode(raw)
    return math.nan if value is None or isinstance(value, str) else float(value)


def field(view: str, feature: str) -> bytes:
    return bytes(_mmh3(f"{view}:{feature}"))


def timestamp_field(view: str) -> str:
    return f"_ts:{view}"


def encode(value: float | int | str | None) -> bytes:
    """A feature value as Feast stores it; ``None`` and NaN as the empty (missing) value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _MISSING  # what Value().SerializeToString() gives
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


def known_key(project: str, join_key: str) -> str:
    """homeloop's Redis set of the entity ids the market job has figures for."""
    return f"homeloop:{project}:known:{join_key}"
