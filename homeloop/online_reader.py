"""All of a request's features in one Redis round trip, as the model's numeric matrix.

A listing's hash (Feast's layout) holds its listing and engagement views and, in
homeloop's own ``_key:*`` fields, the Redis keys of its complex, dong and region. One
server-side script reads, for every listing asked for, its fields and those keys, so 1 or
100 listings cost one round trip. The market figures behind the keys change once a day
(the market job), so a reader keeps them in process (:class:`MarketCache`) and fetches only
those it has not seen, in a second round trip. They are resolved complex → dong → region
by :func:`homeloop.price_levels.resolve`, as in training. (The script reads keys it was
not given, which a single Redis allows and a Redis Cluster would not: the online store is
one Redis, as Feast's Redis store is.)
"""

from __future__ import annotations

import hashlib
import math
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from numpy.typing import NDArray
from redis.exceptions import ResponseError

from homeloop import online_layout as layout
from homeloop.features import ENGAGEMENT_FEATURES, LISTING_FEATURES, MODEL_FEATURES
from homeloop.featurestore import ENGAGEMENT_VIEW, LISTING_VIEW, MARKET_VIEWS
from homeloop.price_levels import LEVEL_FEATURES, LEVELS, RESOLVED, resolve
from homeloop.redis_wire import WireConnection

# Returns {values, pointers, stamps, market version}: ``values`` every listing's own fields
# as consecutive 9-byte Feast doubles, a missing value as nine zero bytes, so the client
# decodes all of it in one vectorised step; ``pointers`` the Redis keys of each listing's
# complex, dong and region (false where it has none); ``stamps`` the µs event time of each
# listing's features (false when the store does not know it); then the market job's
# version counter (ARGV[1]), which tells the client when its remembered markets went stale.
# A view's values come from the vector fields its writer keeps beside Feast's fields (one or
# two fields instead of one per feature: 100 listings took ~1.3 ms of Redis time through
# the per-feature fields); a view that Feast's timestamp says exists but without those
# fields (written by Feast itself, or before a change of its feature list) is read field by
# field.
# The field names are constants of the script (written in by :func:`_scripts`), so a call
# sends only the listings' keys: packing ~40 arguments per call cost more than the read.
_READ = """
local heads = {%(vectors)s, %(timestamps)s, %(pointers)s, %(stamp)s}
local pieces = {{%(listing_pieces)s}, {%(engagement_pieces)s}}
local at = #heads - 4  -- where the timestamps end: then pointers, then the stamp
local views = {{%(listing)s}, {%(engagement)s}}
local missing = string.rep('\\0', 9)
local width = {9 * #views[1], 9 * #views[2]}
local absent = {string.rep(missing, #views[1]), string.rep(missing, #views[2])}
local function each(key, view)
  local values = redis.call('HMGET', key, unpack(views[view]))
  for j = 1, #values do
    local v = values[j]
    if not (v and #v == 9) then values[j] = missing end
  end
  return table.concat(values)
end
local parts, pointers, stamps = {}, {}, {}
local n, p = 0, 0
for i, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, unpack(heads))
  for view = 1, 2 do
    local vector = ''
    for _, h in ipairs(pieces[view]) do
      local piece = values[h]
      if not piece then vector = nil break end
      vector = vector .. piece
    end
    if not (vector and #vector == width[view]) then
      if values[at - 2 + view] then vector = each(key, view) else vector = absent[view] end
    end
    n = n + 1
    parts[n] = vector
  end
  for level = 1, 3 do
    p = p + 1
    pointers[p] = values[at + level] or false
  end
  stamps[i] = values[at + 4] or false
end
return {table.concat(parts), pointers, stamps, redis.call('GET', ARGV[1]) or false}
"""

# The figures of the market keys given (KEYS), ARGV[i] the level of KEYS[i] (1 complex,
# 2 dong, 3 region), as consecutive 9-byte values (nine zero bytes where missing).
_READ_MARKETS = """
local market_fields = {{%(complex)s}, {%(dong)s}, {%(region)s}}
local missing = string.rep('\\0', 9)
local parts, n = {}, 0
for i, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, unpack(market_fields[tonumber(ARGV[i])]))
  for j = 1, #values do
    local v = values[j]
    n = n + 1
    if v and #v == 9 then parts[n] = v else parts[n] = missing end
  end
end
return table.concat(parts)
"""


def _lua(values: list[bytes | str]) -> str:
    """Lua string literals for field names (Feast's are binary hashes): every byte escaped."""
    return ", ".join(
        '"' + "".join(f"\\{c:03d}" for c in (v.encode() if isinstance(v, str) else v)) + '"'
        for v in values
    )


def _scripts() -> tuple[str, str]:
    """The listings script and the markets script, field names written in."""
    listing: list[bytes | str] = [layout.field(LISTING_VIEW, n) for n in LISTING_FEATURES]
    engagement: list[bytes | str] = [layout.field(ENGAGEMENT_VIEW, n) for n in ENGAGEMENT_FEATURES]
    listing_vector = layout.vector_fields(LISTING_VIEW, LISTING_FEATURES)
    engagement_vector = layout.vector_fields(ENGAGEMENT_VIEW, ENGAGEMENT_FEATURES)
    vectors: list[bytes | str] = [*listing_vector, *engagement_vector]
    first = len(listing_vector) + 1  # Lua counts from 1
    timestamps: list[bytes | str] = [
        layout.timestamp_field(LISTING_VIEW),
        layout.timestamp_field(ENGAGEMENT_VIEW),
    ]
    market = [[layout.field(view, n) for n in LEVEL_FEATURES] for view in MARKET_VIEWS]
    pointers: list[bytes | str] = [
        layout.MARKET_POINTERS[key] for key in ("complex_id", "dong_id", "region_code")
    ]
    read = _READ % {
        "vectors": _lua(vectors),
        "listing_pieces": ", ".join(str(k) for k in range(1, first)),
        "engagement_pieces": ", ".join(str(k) for k in range(first, len(vectors) + 1)),
        "timestamps": _lua(timestamps),
        "listing": _lua(listing),
        "engagement": _lua(engagement),
        "pointers": _lua(pointers),
        "stamp": _lua([layout.micros_field(LISTING_VIEW)]),
    }
    markets = _READ_MARKETS % {
        "complex": _lua(market[0]),  # type: ignore[arg-type]
        "dong": _lua(market[1]),  # type: ignore[arg-type]
        "region": _lua(market[2]),  # type: ignore[arg-type]
    }
    return read, markets


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


class MarketCache:
    """Market figures (one market key's :data:`LEVEL_FEATURES` as 9-byte values) by key.

    Listings change all day; their markets change when the market job runs. Reading the
    three markets of every listing again in every call was a third of the script's Redis
    time (100 listings: ~1.5 ms, ~1.0 ms without the markets). Forgotten when the market
    job's version counter moves (it bumps it after writing), and at the latest
    ``max_age_s`` after they were read, for a write that does not bump it (such as a
    ``feast materialize`` run by hand).
    """

    def __init__(
        self, max_age_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._chunks: dict[bytes, bytes] = {}
        self._version: bytes | None = None
        self._max_age_s = max_age_s
        self._clock = clock
        self._since = clock()

    def check(self, version: bytes | None) -> None:
        """Forget everything if the market version moved or the figures are too old."""
        now = self._clock()
        if version != self._version or now - self._since > self._max_age_s:
            self._chunks.clear()
            self._version, self._since = version, now

    def missing(self, pointers: Sequence[bytes | None]) -> list[bytes]:
        """The keys among ``pointers`` not held, each once."""
        chunks = self._chunks
        return list(dict.fromkeys(p for p in pointers if p is not None and p not in chunks))

    def put(self, keys: Sequence[bytes], blob: bytes) -> None:
        if len(self._chunks) + len(keys) > _MARKETS_MAX:
            self._chunks.clear()  # the simplest bound: markets are read again as needed
        width = _MARKET_BYTES
        self._chunks.update((key, blob[i * width : (i + 1) * width]) for i, key in enumerate(keys))

    def rows(self, own: bytes, pointers: Sequence[bytes | None], own_bytes: int) -> bytes:
        """Each row's own values (``own_bytes`` of ``own`` per row) followed by its three
        markets, as the decoder takes them (every key in ``pointers`` held)."""
        chunks, none = self._chunks, _NO_MARKET
        parts = []
        for i in range(len(pointers) // 3):
            parts.append(own[i * own_bytes : (i + 1) * own_bytes])
            for p in pointers[3 * i : 3 * i + 3]:
                parts.append(none if p is None else chunks[p])
        return b"".join(parts)


class OnlineReader:
    """Reads :class:`OnlineFeatures` for listing ids from the online store."""

    def __init__(
        self,
        redis: aioredis.Redis,
        project: str,
        wire: WireConnection | None = None,
    ) -> None:
        """``wire``, when given, carries the reads (the serving hot path); ``redis`` carries
        them otherwise."""
        self._project = project
        self._redis = redis
        self._wire = wire
        self._markets = MarketCache()
        self._version_key = layout.market_version_key(project)
        self._sources = dict(zip(("read", "markets"), _scripts(), strict=True))
        self._shas = {
            name: hashlib.sha1(source.encode()).hexdigest()
            for name, source in self._sources.items()
        }
        self._scripts = {
            name: redis.register_script(source) for name, source in self._sources.items()
        }

    async def read(self, listing_ids: Sequence[str]) -> OnlineFeatures:
        ids = list(listing_ids)
        if not ids:
            return decode_rows(ids, [])
        keys = [layout.entity_key(self._project, "listing_id", i) for i in ids]
        own, pointers, stamps, version = await self._eval("read", keys, [self._version_key])
        self._markets.check(version)
        await self._fetch_markets(pointers)
        return decode_rows(ids, [self._markets.rows(own, pointers, 9 * _OWN), stamps])

    async def read_market(
        self, places: Sequence[tuple[str, str, str]]
    ) -> dict[str, NDArray[np.float64]]:
        """The resolved market columns for (complex_id, dong_id, region_code) rows, for a
        listing the store does not know."""
        if not places:
            return decode_market(b"", 0)
        self._markets.check(await self._command("GET", self._version_key))
        pointers = [
            layout.entity_key(self._project, level, value)
            for place in places
            for level, value in zip(LEVELS, place, strict=True)
        ]
        await self._fetch_markets(pointers)
        return decode_market(self._markets.rows(b"", pointers, 0), len(places))

    async def _fetch_markets(self, pointers: Sequence[bytes | None]) -> None:
        """Read the markets among ``pointers`` that the cache does not hold (one call)."""
        missing = self._markets.missing(pointers)
        if missing:
            level = {p: str(i % 3 + 1) for i, p in enumerate(pointers) if p is not None}
            blob = await self._eval("markets", missing, [level[p] for p in missing])
            self._markets.put(missing, blob)

    async def _eval(self, name: str, keys: list[bytes], args: list[Any]) -> Any:
        if self._wire is None:
            return await self._scripts[name](keys=keys, args=args)
        try:
            return await self._command("EVALSHA", self._shas[name], len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self._command("SCRIPT", "LOAD", self._sources[name])  # a new or flushed Redis
        return await self._command("EVALSHA", self._shas[name], len(keys), *keys, *args)

    async def _command(self, *args: Any) -> Any:
        if self._wire is not None:
            return await self._wire.call(*args)
        return await self._redis.execute_command(*args)


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
_OWN = len(LISTING_FEATURES) + len(ENGAGEMENT_FEATURES)
_ROW_BYTES = 9 * _SLOTS
_MARKET_BYTES = 9 * len(LEVEL_FEATURES)
_NO_MARKET = bytes(_MARKET_BYTES)
_RESOLVED_COLUMNS = [_COLUMN[name] for name in RESOLVED]


def decode_rows(listing_ids: list[str], raw: list[Any]) -> OnlineFeatures:
    """The script's reply as the model's matrix (pure: unit-tested without Redis)."""
    n = len(listing_ids)
    blob, stamps = (raw[0], raw[1]) if raw else (b"", [])
    markets = _market_rows([_market_key(blob, i) for i in range(n)])
    matrix = _few_rows(blob, markets) if 0 < n <= _FEW else _many_rows(blob, markets)
    updated = np.array([np.nan if s is None else float(s) for s in stamps], dtype=np.float64)
    return OnlineFeatures(listing_ids, matrix, ~np.isnan(updated), updated.reshape(n))


def _many_rows(blob: bytes, markets: list[list[float]]) -> NDArray[np.float64]:
    n = len(markets)
    values = layout.decode_double_blob(blob).reshape(n, _SLOTS)
    matrix = np.full((n, len(MODEL_FEATURES)), np.nan)
    matrix[:, _OWN_COLUMNS] = values[:, :_OWN]
    matrix[:, _RESOLVED_COLUMNS] = np.array(markets, dtype=np.float64).reshape(n, len(RESOLVED))
    return matrix


# A few rows (a single-listing request) are decoded in plain Python: numpy's cost per call,
# paid with cold caches after every round trip, was most of decoding one row (p50 ~50 µs
# between reads, ~26 µs this way). A test holds both ways equal.
_FEW = 4
_OWN_ROW = struct.Struct("<" + "Bd" * _OWN)
# Where each model column is in a row's own values followed by its resolved market values
# (the index past both: a column neither fills, NaN).
_ORDER = [
    _OWN_COLUMNS.index(c)
    if c in _OWN_COLUMNS
    else _OWN + _RESOLVED_COLUMNS.index(c)
    if c in _RESOLVED_COLUMNS
    else _OWN + len(RESOLVED)
    for c in range(len(MODEL_FEATURES))
]


def _few_rows(blob: bytes, markets: list[list[float]]) -> NDArray[np.float64]:
    nan, tag = math.nan, layout.DOUBLE_TAG_BYTE
    rows = []
    for i, market in enumerate(markets):
        fields = _OWN_ROW.unpack_from(blob, i * _ROW_BYTES)
        values = [v if t == tag else nan for t, v in zip(fields[::2], fields[1::2], strict=True)]
        values += market
        values.append(nan)
        rows.append([values[k] for k in _ORDER])
    return np.array(rows, dtype=np.float64)


def _market_key(blob: bytes, row: int) -> bytes:
    """The market bytes (complex, dong, region figures) a row of the reply ends with."""
    return blob[row * _ROW_BYTES + 9 * _OWN : (row + 1) * _ROW_BYTES]


# Resolved market columns by the market bytes a row of the script's reply ends with.
_MARKETS: dict[bytes, list[float]] = {}
_MARKETS_MAX = 65_536


def _market_rows(keys: list[bytes]) -> list[list[float]]:
    """The resolved market columns (in :data:`RESOLVED` order) for each row's market bytes.

    :func:`resolve` is some 35 numpy calls however few the rows: most of the decoding of a
    one-listing read. Listings in one complex have the same market bytes, so each distinct
    combination is resolved once (a batch's new ones in one call) and remembered. The key is
    the bytes themselves: a figure that changes is a new key, so nothing goes stale.
    """
    new = list(dict.fromkeys(key for key in keys if key not in _MARKETS))
    if new:
        if len(_MARKETS) + len(new) > _MARKETS_MAX:
            _MARKETS.clear()  # the simplest bound: a refill is one resolve per batch
        resolved = decode_market(b"".join(new), len(new))
        columns = np.column_stack([resolved[name] for name in RESOLVED]).tolist()
        _MARKETS.update(zip(new, columns, strict=True))
    return [_MARKETS[key] for key in keys]
