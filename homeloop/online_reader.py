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
_READ = """
local nl = tonumber(ARGV[1])
local listing_fields = {}
for i = 1, nl do listing_fields[i] = ARGV[1 + i] end
local nm = tonumber(ARGV[2 + nl])
local pos = 3 + nl
local market_fields = {{}, {}, {}}
for l = 1, 3 do
  for i = 1, nm do market_fields[l][i] = ARGV[pos]; pos = pos + 1 end
end
local pointers = {ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3], ARGV[pos]}
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
        self._script = redis.register_script(_READ)
        self._market_fields = [
            [layout.field(view, n) for n in LEVEL_FEATURES] for view in MARKET_VIEWS
        ]
        listing_fields: list[bytes | str] = [
            layout.field(LISTING_VIEW, n) for n in LISTING_FEATURES
        ]
        listing_fields += [layout.field(ENGAGEMENT_VIEW, n) for n in ENGAGEMENT_FEATURES]
        args: list[bytes | str | int] = [len(listing_fields), *listing_fields, len(LEVEL_FEATURES)]
        for view in MARKET_VIEWS:
            args += [layout.field(view, n) for n in LEVEL_FEATURES]
        args.append(layout.micros_field(LISTING_VIEW))
        args += [layout.MARKET_POINTERS[key] for key in ("complex_id", "dong_id", "region_code")]
        self._args = args

    async def read(self, listing_ids: Sequence[str]) -> OnlineFeatures:
        keys = [layout.entity_key(self._project, "listing_id", i) for i in listing_ids]
        raw = await self._script(keys=keys, args=self._args) if keys else []
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
