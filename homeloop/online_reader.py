"""All of a request's features in one Redis round trip, as the model's numeric matrix.

A listing's hash (Feast's layout) holds its listing and engagement views and, in
homeloop's own ``_key:*`` fields, the Redis keys of its complex, dong and region. One
server-side script reads, for every listing asked for, its fields and then its three
market hashes, so 1 or 100 listings cost one round trip. The market figures are resolved
complex → dong → region by :func:`homeloop.price_levels.resolve`, as in training.
(The script reads keys it was not given, which a single Redis allows and a Redis Cluster
would not: the online store is one Redis, as Feast's Redis store is.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from numpy.typing import NDArray

from homeloop import online_layout as layout
from homeloop.features import ENGAGEMENT_FEATURES, LISTING_FEATURES, MODEL_FEATURES
from homeloop.featurestore import ENGAGEMENT_VIEW, LISTING_VIEW, MARKET_VIEWS
from homeloop.price_levels import LEVEL_FEATURES, LEVELS, resolve

# Returns {values, stamps}: ``values`` every listing's fields (its own, then its complex,
# dong and region market fields) as consecutive 9-byte Feast doubles, a missing value as
# nine zero bytes, so the client decodes all of it in one vectorised step; ``stamps`` the
# µs event time of each listing's features (false when the store does not know it).
# The field names are constants of the script (written in by :func:`_script`), so a call
# sends only the listings' keys: packing ~40 arguments per call cost more than the read.
_READ = """
local listing_fields = {%(listing)s}
local market_fields = {{%(complex)s}, {%(dong)s}, {%(region)s}}
local pointers = {%(pointers)s, %(stamp)s}
local nl, nm = #listing_fields, #market_fields[1]
local missing = string.rep('\\0', 9)
local parts, stamps = {}, {}
local function put(values, n)
  for i = 1, n do
    local v = values[i]
    if v and #v == 9 then parts[#parts + 1] = v else parts[#parts + 1] = missing end
  end
end
for i, key in ipairs(KEYS) do
  put(redis.call('HMGET', key, unpack(listing_fields)), nl)
  local targets = redis.call('HMGET', key, unpack(pointers))
  for l = 1, 3 do
    if targets[l] then
      put(redis.call('HMGET', targets[l], unpack(market_fields[l])), nm)
    else
      put({}, nm)
    end
  end
  stamps[i] = targets[4] or false
end
return {table.concat(parts), stamps}
"""


def _lua(values: list[bytes | str]) -> str:
    """Lua string literals for field names (Feast's are binary hashes): every byte escaped."""
    return ", ".join(
        '"' + "".join(f"\\{c:03d}" for c in (v.encode() if isinstance(v, str) else v)) + '"'
        for v in values
    )


def _script() -> str:
    listing: list[bytes | str] = [layout.field(LISTING_VIEW, n) for n in LISTING_FEATURES]
    listing += [layout.field(ENGAGEMENT_VIEW, n) for n in ENGAGEMENT_FEATURES]
    market = [[layout.field(view, n) for n in LEVEL_FEATURES] for view in MARKET_VIEWS]
    pointers: list[bytes | str] = [
        layout.MARKET_POINTERS[key] for key in ("complex_id", "dong_id", "region_code")
    ]
    return _READ % {
        "listing": _lua(listing),
        "complex": _lua(market[0]),  # type: ignore[arg-type]
        "dong": _lua(market[1]),  # type: ignore[arg-type]
        "region": _lua(market[2]),  # type: ignore[arg-type]
        "pointers": _lua(pointers),
        "stamp": _lua([layout.micros_field(LISTING_VIEW)]),
    }


_COLUMN = {name: i for i, name in enumerate(MODEL_FEATURES)}
_OWN_COLUMNS = [_COLUMN[name] for name in (*LISTING_FEATURES, *ENGAGEMENT_FEATURES)]


@dataclass(frozen=True)
class OnlineFeatures:
    """Features of the listings asked for, row by row, columns in :data:`MODEL_FEATURES`."""

    listing_ids: list[str]
    matrix: NDArray[np.float64]
    found: NDArray[np.bool_]  # the store knows the listing
    updated_at_us: NDArray[np.float64]  # event time of its listing features, µs; NaN if none

    def row(self, i: int) -> dict[str, float | None]:
        return {
            name: None if math.isnan(v := float(self.matrix[i, j])) else v
            for j, name in enumerate(MODEL_FEATURES)
        }


class OnlineReader:
    """Reads :class:`OnlineFeatures` for listing ids from the online store."""

    def __init__(self, redis: aioredis.Redis, project: str) -> None:
        self._project = project
        self._redis = redis
        self._script = redis.register_script(_script())
        self._market_fields = [
            [layout.field(view, n) for n in LEVEL_FEATURES] for view in MARKET_VIEWS
        ]

    async def read(self, listing_ids: Sequence[str]) -> OnlineFeatures:
        keys = [layout.entity_key(self._project, "listing_id", i) for i in listing_ids]
        raw = await self._script(keys=keys) if keys else []
        return decode_rows(list(listing_ids), raw)

    async def read_market(
        self, places: Sequence[tuple[str, str, str]]
    ) -> dict[str, NDArray[np.float64]]:
        """The resolved market columns for (complex_id, dong_id, region_code) rows, for a
        listing the store does not know: one pipelined round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for place in places:
            for level, value, fields in zip(LEVELS, place, self._market_fields, strict=True):
                pipe.hmget(layout.entity_key(self._project, level, value), fields)  # type: ignore[arg-type]
        replies = await pipe.execute() if places else []
        blob = b"".join(
            v if v is not None and len(v) == 9 else _MISSING for reply in replies for v in reply
        )
        return decode_market(blob, len(places))


_MISSING = bytes(9)


def decode_market(blob: bytes, n: int) -> dict[str, NDArray[np.float64]]:
    """Three levels' figures per row (9-byte slots) resolved complex → dong → region."""
    width = len(LEVEL_FEATURES)
    values = layout.decode_double_blob(blob).reshape(n, len(MARKET_VIEWS) * width)
    levels = [
        {name: values[:, level * width + j] for j, name in enumerate(LEVEL_FEATURES)}
        for level in range(len(MARKET_VIEWS))
    ]
    return resolve(levels)[0]


_SLOTS = len(LISTING_FEATURES) + len(ENGAGEMENT_FEATURES) + len(MARKET_VIEWS) * len(LEVEL_FEATURES)


def decode_rows(listing_ids: list[str], raw: list[Any]) -> OnlineFeatures:
    """The script's reply as the model's matrix (pure: unit-tested without Redis)."""
    n = len(listing_ids)
    blob, stamps = (raw[0], raw[1]) if raw else (b"", [])
    values = layout.decode_double_blob(blob).reshape(n, _SLOTS)
    own = len(LISTING_FEATURES) + len(ENGAGEMENT_FEATURES)
    matrix = np.full((n, len(MODEL_FEATURES)), np.nan)
    matrix[:, _OWN_COLUMNS] = values[:, :own]
    width = len(LEVEL_FEATURES)
    levels = [
        {name: values[:, own + level * width + j] for j, name in enumerate(LEVEL_FEATURES)}
        for level in range(len(MARKET_VIEWS))
    ]
    resolved, _ = resolve(levels)
    for name, column in resolved.items():
        matrix[:, _COLUMN[name]] = column
    updated = np.array([np.nan if s is None else float(s) for s in stamps], dtype=np.float64)
    return OnlineFeatures(listing_ids, matrix, ~np.isnan(updated), updated.reshape(n))
