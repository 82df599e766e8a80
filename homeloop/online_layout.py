"""The Feast Redis online store's own layout, so hot paths can read and write it directly.

Key: the serialized entity key (version 3) followed by the project name. Hash fields:
murmur3 of ``"<view>:<feature>"`` → a serialized ``feast.types.Value``, and ``_ts:<view>``
→ a serialized ``google.protobuf.Timestamp`` of the event time. Feast's own helpers build
the key and field names, and a parity test checks byte equality with Feast's writer, so a
Feast upgrade that changes the layout fails the suite rather than the readers.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

import numpy as np
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value, ValueType
from google.protobuf.timestamp_pb2 import Timestamp
from numpy.typing import NDArray

ENTITY_KEY_VERSION = 3
# ``feast.types.Value`` with only ``double_val`` (field 5, fixed64) set: tag byte + 8 bytes.
_DOUBLE_TAG = bytes([5 << 3 | 1])
DOUBLE_TAG_BYTE = _DOUBLE_TAG[0]
_MISSING = b""


@lru_cache(maxsize=262_144)
def entity_key(project: str, join_key: str, value: str) -> bytes:
    """The Redis key of one entity (cached: hot entities are keyed once).

    Feast's serialization (version 3) of a single string key, written out: the count of
    join keys, then type, length and bytes of the join key and of its value, then the
    project. Feast's own builder costs ~5 µs a key through protobuf, felt by every new
    listing a stream sees; a test checks the bytes against it (:func:`feast_entity_key`).
    """
    raw = value.encode()
    return _key_prefix(join_key) + _STRING + struct.pack("<I", len(raw)) + raw + project.encode()


_STRING = struct.pack("<I", ValueType.STRING)


@lru_cache(maxsize=64)
def _key_prefix(join_key: str) -> bytes:
    raw = join_key.encode()
    return struct.pack("<I", 1) + _STRING + struct.pack("<I", len(raw)) + raw


def feast_entity_key(project: str, join_key: str, value: str) -> bytes:
    """:func:`entity_key` as Feast builds it (for the tests that hold the two equal)."""
    proto = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])
    return bytes(_redis_key(project, proto, ENTITY_KEY_VERSION))


# homeloop's fields in a listing's hash holding the Redis keys of its market entities
# (written by the listing agent, followed by the reader in the same round trip).
MARKET_POINTERS = {
    "complex_id": "_key:complex",
    "dong_id": "_key:dong",
    "region_code": "_key:region",
}


def micros_field(view: str) -> str:
    """homeloop's own field beside Feast's: the event time in µs, for compare-and-set in Lua.

    Feast reads only the fields it asks for, so an extra field is invisible to it.
    """
    return f"_tsu:{view}"


# Values per vector field: 63 bytes, under Redis's limit for a value in a compact hash
# (``hash-max-listpack-value``, 64 by default). One longer value turns the listing's whole
# hash into a hashtable: 1,768 bytes a listing instead of 688 (measured with MEMORY USAGE).
VECTOR_PIECE = 7


def vector_fields(view: str, names: Sequence[str]) -> list[bytes]:
    """homeloop's own fields beside Feast's: a view's values in ``names`` order as 9-byte
    values (:func:`double_blob`'s format: nine zero bytes where missing), written with them,
    in pieces of :data:`VECTOR_PIECE`, so a reader takes a whole view from one or two fields
    instead of one per feature.

    Named by a hash of the names: after the feature list changes, the old pieces read as
    absent (and the reader takes Feast's fields) rather than as the wrong columns.
    """
    tag = hashlib.sha1("\0".join(names).encode()).hexdigest()[:8]
    count = -(-len(names) // VECTOR_PIECE)
    return [f"_vec:{view}:{tag}:{k}".encode() for k in range(count)]


def vector_pieces(row: bytes) -> list[bytes]:
    """One row's 9-byte values cut as :func:`vector_fields` names them."""
    width = 9 * VECTOR_PIECE
    return [row[i : i + width] for i in range(0, len(row), width)]


def encode_double(value: float) -> bytes:
    """:func:`encode` for a float, without building a protobuf message (the hot path)."""
    if value != value:  # NaN
        return _MISSING
    return _DOUBLE_TAG + struct.pack("<d", value)


def double_blob(columns: Sequence[NDArray[np.float64]]) -> bytes:
    """The columns' values, row by row, as consecutive 9-byte :func:`encode_double` values
    (vectorised), except that a missing value is 9 bytes with tag 0 so rows stay fixed-size;
    the writer's script turns those into Feast's empty value."""
    values = np.column_stack(columns).astype(np.float64)
    packed = np.empty(values.shape, dtype=[("tag", "u1"), ("value", "<f8")])
    packed["value"] = np.nan_to_num(values)
    packed["tag"] = np.where(np.isnan(values), 0, _DOUBLE_TAG[0])
    return packed.tobytes()


def decode_double_blob(blob: bytes) -> NDArray[np.float64]:
    """Consecutive 9-byte values (as :func:`double_blob` makes them, or as the reader's
    script returns them) as floats, NaN where the tag is not a double's."""
    packed = np.frombuffer(blob, dtype=[("tag", "u1"), ("value", "<f8")])
    return np.where(packed["tag"] == _DOUBLE_TAG[0], packed["value"], np.nan)


@lru_cache(maxsize=65_536)
def encode_string(value: str) -> bytes:
    """:func:`encode` for a string (cached: ids and codes repeat)."""
    return Value(string_val=value).SerializeToString()


def field(view: str, feature: str) -> bytes:
    return bytes(_mmh3(f"{view}:{feature}"))


def timestamp_field(view: str) -> str:
    return f"_ts:{view}"


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_time_us(us: int) -> bytes:
    """:func:`encode_time` from epoch microseconds, without protobuf (the hot path):
    ``seconds`` (field 1) and ``nanos`` (field 2) as varints, zero fields omitted."""
    seconds, rest = divmod(us, 1_000_000)
    out = b"\x08" + _varint(seconds) if seconds else b""
    return out + (b"\x10" + _varint(rest * 1000) if rest else b"")


def encode_time(at: datetime) -> bytes:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts.SerializeToString()


def known_key(project: str, join_key: str) -> str:
    """homeloop's Redis set of the entity ids the market job has figures for."""
    return f"homeloop:{project}:known:{join_key}"


def market_version_key(project: str) -> str:
    """homeloop's counter of market job runs: readers that keep market figures in process
    forget them when it moves (:class:`homeloop.online_reader.MarketCache`)."""
    return f"homeloop:{project}:market_version"
