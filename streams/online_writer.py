"""Writes stream features to the online store in micro-batches, in Feast's Redis layout.

Feast's Python write path costs more than the rest of an agent (about 4,200 events/s
through it here), so the writers speak the online store's own layout
(:mod:`homeloop.online_layout`): what Feast would write, byte for byte (the parity tests
check). Each batch is one server-side script call, so a batch costs one round trip (the
scripts touch keys they compute, which one Redis allows and a Redis Cluster would not), and
like Feast a value is never replaced by an older one (compare-and-set on the event time),
which also makes replays after a crash change nothing. Writes are retried until they
succeed, because a batch's offsets are committed only after they return.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import msgpack
import numpy as np
import pandas as pd
import redis.asyncio as aioredis
from numpy.typing import NDArray
from tenacity import AsyncRetrying, before_sleep_log, wait_exponential_jitter

from homeloop import engagement
from homeloop import online_layout as layout
from homeloop.features import LISTING_FEATURES, LISTING_KEYS
from homeloop.featurestore import ENGAGEMENT_VIEW, LISTING_VIEW

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Rows per script call: a script blocks Redis while it runs, and serving reads the same
# Redis, so no call may hold it for more than a few milliseconds.
SCRIPT_ROWS = 500

# Compare-and-set of one view's fields per key, one call per batch. The batch is one
# msgpack argument, in columns (packing thousands of separate arguments, or a list per row,
# cost more than the rest of the agent): the ts field, the µs field, the numeric and the
# other field names, then per row its key, its µs (decimal, as stored), its Feast
# timestamp, then the numeric values of all rows as one blob of 9-byte Feast doubles (tag 0
# = missing), then one list per other field, then the names of the view's vector fields
# and the bytes each holds (the row's slice of the blob as it is, in pieces:
# :func:`homeloop.online_layout.vector_fields`). Returns
# 1/0 per row: written, or not (older or equal). Locals and counted indices rather than
# globals and ``#args`` took the script's Redis time from ~16 to ~11 µs a row, most of what
# is left being the HGET and HSET.
_PUT_NEWER = """
local sub, byte, unpack, call = string.sub, string.byte, unpack, redis.call
local batch = cmsgpack.unpack(ARGV[1])
local ts_field, us_field, numeric, others = batch[1], batch[2], batch[3], batch[4]
local keys, stamps, times, blob, columns = batch[5], batch[6], batch[7], batch[8], batch[9]
local vector_fields, piece = batch[10], batch[11]
local nnum, noth = #numeric, #others
local written = {}
local at = 0
for i, key in ipairs(keys) do
  local us = stamps[i]
  local prev = tonumber(call('HGET', key, us_field) or '-1')
  if tonumber(us) > prev then
    local args = {ts_field, times[i], us_field, us}
    local n = 4
    for k, name in ipairs(vector_fields) do
      local from = at + piece * (k - 1)
      args[n + 1] = name
      args[n + 2] = sub(blob, from + 1, math.min(from + piece, at + 9 * nnum))
      n = n + 2
    end
    for f = 1, nnum do
      args[n + 1] = numeric[f]
      if byte(blob, at + 1) == 0 then
        args[n + 2] = ''
      else
        args[n + 2] = sub(blob, at + 1, at + 9)
      end
      n, at = n + 2, at + 9
    end
    for f = 1, noth do
      args[n + 1] = others[f]
      args[n + 2] = columns[f][i]
      n = n + 2
    end
    call('HSET', key, unpack(args, 1, n))
    written[i] = 1
  else
    at = at + 9 * nnum
    written[i] = 0
  end
end
return written
"""


async def retried(operation: Callable[[], Awaitable[T]]) -> T:
    """Run ``operation`` until it succeeds, backing off (offsets wait for it)."""
    async for attempt in AsyncRetrying(
        wait=wait_exponential_jitter(initial=0.1, max=5.0),
        before_sleep=before_sleep_log(logger, logging.WARNING),
        reraise=True,
    ):
        with attempt:
            return await operation()
    raise AssertionError("unreachable")  # pragma: no cover


def micros(at: datetime) -> int:
    return round(at.timestamp() * 1_000_000)


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


@dataclass(frozen=True)
class ListingRows:
    """One row per listing event; the online store keeps each listing's newest."""

    event_ids: list[UUID]
    listing_ids: list[str]
    event_times: list[datetime]
    features: Mapping[str, NDArray[np.float64]]
    keys: Mapping[str, list[str]]  # complex_id, dong_id, region_code

    def push_frame(self) -> pd.DataFrame:
        """The rows as Feast's ``push`` takes them for ``listing_push`` (the SDK baseline
        and the byte-for-byte parity test push exactly what the writer writes)."""
        frame = pd.DataFrame({"listing_id": self.listing_ids, "event_timestamp": self.event_times})
        frame["created"] = pd.Timestamp.now(tz="UTC")
        for name in LISTING_FEATURES:
            frame[name] = self.features[name]
        for name, values in self.keys.items():
            frame[name] = values
        return frame


class ListingWriter:
    """Puts listing feature rows into the online store (Redis, Feast's layout)."""

    def __init__(self, redis: aioredis.Redis, project: str) -> None:
        self._redis = redis
        self._project = project
        self._script = redis.register_script(_PUT_NEWER)
        self._numeric = [layout.field(LISTING_VIEW, name) for name in LISTING_FEATURES]
        self._strings = [layout.field(LISTING_VIEW, name) for name in LISTING_KEYS]
        self._market = [layout.MARKET_POINTERS[name].encode() for name in LISTING_KEYS]
        self._vectors = layout.vector_fields(LISTING_VIEW, LISTING_FEATURES)

    def _batches(self, rows: ListingRows) -> list[bytes]:
        project, n = self._project, len(rows.listing_ids)
        keys = [layout.entity_key(project, "listing_id", i) for i in rows.listing_ids]
        micro = [micros(at) for at in rows.event_times]
        times = [layout.encode_time_us(us) for us in micro]
        stamps = [str(us).encode() for us in micro]  # as stored: Lua reads the number
        blob = layout.double_blob([rows.features[name] for name in LISTING_FEATURES])
        width = 9 * len(LISTING_FEATURES)
        values = [rows.keys[name] for name in LISTING_KEYS]
        columns = [[layout.encode_string(v) for v in column] for column in values]
        columns += [
            [layout.entity_key(project, name, v) for v in column]
            for name, column in zip(LISTING_KEYS, values, strict=True)
        ]
        header = [
            layout.timestamp_field(LISTING_VIEW).encode(),
            layout.micros_field(LISTING_VIEW).encode(),
            self._numeric,
            [*self._strings, *self._market],
        ]
        # The raw type for bytes: the Lua cmsgpack in Redis predates msgpack's bin types.
        return [
            bytes(
                msgpack.packb(
                    [
                        *header,
                        keys[i : i + SCRIPT_ROWS],
                        stamps[i : i + SCRIPT_ROWS],
                        times[i : i + SCRIPT_ROWS],
                        blob[i * width : (i + SCRIPT_ROWS) * width],
                        [column[i : i + SCRIPT_ROWS] for column in columns],
                        self._vectors,
                        9 * layout.VECTOR_PIECE,
                    ],
                    use_bin_type=False,
                )
            )
            for i in range(0, n, SCRIPT_ROWS)
        ]

    async def write(self, rows: ListingRows) -> int:
        """Writes what is newer than the stored value; returns how many listings changed."""
        if not rows.listing_ids:
            return 0

        async def put(chunk: bytes) -> int:
            flags = await retried(lambda: self._script(keys=[], args=[chunk]))
            return int(sum(flags))

        # Chunks in parallel: the rows of one batch are distinct writes that commute.
        return sum(await asyncio.gather(*(put(chunk) for chunk in self._batches(rows))))


# Engagement: add the events (idempotent by event_id), evict what no window counts, count
# every window as of the listing's newest event time (or a later sweep time), keep the
# next moment a count changes in the expiry schedule, and remember the as-of time.
# KEYS[i]: the listing's Feast hash. ARGV: zset prefix, expiry key, µs field, window
# seconds (3), then per key: listing id, as-of candidate µs, n events, (kind, id, µs)*n.
# Returns per key: {as_of µs, counts (kinds × windows)}.
_COUNT = """
local prefix, expiry, us_field = ARGV[1], ARGV[2], ARGV[3]
local windows = {tonumber(ARGV[4]) * 1e6, tonumber(ARGV[5]) * 1e6, tonumber(ARGV[6]) * 1e6}
local kinds = {'click', 'inquiry'}
local out = {}
local at = 7
for i, key in ipairs(KEYS) do
  local listing, candidate, n = ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  at = at + 3
  for e = 1, n do
    redis.call('ZADD', prefix .. listing .. ':' .. ARGV[at], ARGV[at + 2], ARGV[at + 1])
    at = at + 3
  end
  local as_of = math.max(candidate, tonumber(redis.call('HGET', key, us_field) or '0'))
  local row = {string.format('%.0f', as_of)}
  local next_change = nil
  for _, kind in ipairs(kinds) do
    local zkey = prefix .. listing .. ':' .. kind
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', string.format('%.0f', as_of - windows[3]))
    for _, w in ipairs(windows) do
      local lo = '(' .. string.format('%.0f', as_of - w)
      row[#row + 1] = redis.call('ZCOUNT', zkey, lo, string.format('%.0f', as_of))
      local oldest = redis.call('ZRANGEBYSCORE', zkey, lo, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      if oldest[2] then
        local change = tonumber(oldest[2]) + w
        if next_change == nil or change < next_change then next_change = change end
      end
    end
  end
  if next_change then
    redis.call('ZADD', expiry, string.format('%.0f', next_change), listing)
  else
    redis.call('ZREM', expiry, listing)
  end
  redis.call('HSET', key, us_field, string.format('%.0f', as_of))
  out[i] = row
end
return out
"""

# Listings whose counts change by ``ARGV[1]`` (µs), at most ``ARGV[2]`` of them.
_DUE = """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
"""


@dataclass(frozen=True)
class EngagementRows:
    listing_ids: list[str]
    as_of: list[datetime]
    counts: dict[str, list[float]]  # engagement.FEATURES


class EngagementWriter:
    """Sliding-window engagement counts in Redis, published in Feast's layout."""

    def __init__(self, redis: aioredis.Redis, project: str) -> None:
        self._redis = redis
        self._project = project
        self._count = redis.register_script(_COUNT)
        self._due = redis.register_script(_DUE)
        self.zset_prefix = f"homeloop:{project}:engagement:"
        self.expiry_key = f"homeloop:{project}:engagement-expiry"
        self._fields = [layout.field(ENGAGEMENT_VIEW, name) for name in engagement.FEATURES]
        self._vectors = layout.vector_fields(ENGAGEMENT_VIEW, engagement.FEATURES)

    async def add(
        self, events: Mapping[str, Sequence[tuple[str, str, datetime]]]
    ) -> EngagementRows:
        """Adds (kind, event_id, time) per listing; returns their counts as of each's newest."""
        batch = {
            listing: (max(micros(t) for _, _, t in items), items)
            for listing, items in events.items()
        }
        return await self._recount(batch)

    async def sweep(self, watermark: datetime, limit: int = 5_000) -> EngagementRows:
        """Recount the listings whose windows slid past an event by ``watermark``."""
        due = await self._due(keys=[self.expiry_key], args=[micros(watermark), limit])
        now = micros(watermark)
        return await self._recount({raw.decode(): (now, ()) for raw in due})

    async def _recount(
        self, batch: Mapping[str, tuple[int, Sequence[tuple[str, str, datetime]]]]
    ) -> EngagementRows:
        if not batch:
            return EngagementRows([], [], {name: [] for name in engagement.FEATURES})
        listings = list(batch)
        keys = [layout.entity_key(self._project, "listing_id", i) for i in listings]
        args: list[Any] = [
            self.zset_prefix,
            self.expiry_key,
            layout.micros_field(ENGAGEMENT_VIEW),
            *engagement.WINDOWS_S.values(),
        ]
        for listing in listings:
            candidate, items = batch[listing]
            args += [listing, candidate, len(items)]
            for kind, event_id, at in items:
                args += [kind, event_id, micros(at)]
        result = await retried(lambda: self._count(keys=keys, args=args))
        rows = EngagementRows(
            listings,
            [from_micros(int(row[0])) for row in result],
            {
                name: [float(row[1 + j]) for row in result]
                for j, name in enumerate(engagement.FEATURES)
            },
        )
        await retried(lambda: self._publish(keys, rows))
        return rows

    async def _publish(self, keys: list[bytes], rows: EngagementRows) -> None:
        """The counts as Feast's engagement view (the as-of time was stored by the script)."""
        ts_field = layout.timestamp_field(ENGAGEMENT_VIEW)
        blob = layout.double_blob([np.asarray(rows.counts[n]) for n in engagement.FEATURES])
        width = 9 * len(engagement.FEATURES)
        async with self._redis.pipeline(transaction=False) as pipe:
            for i, key in enumerate(keys):
                mapping: dict[bytes | str, bytes] = {ts_field: layout.encode_time(rows.as_of[i])}
                pieces = layout.vector_pieces(blob[i * width : (i + 1) * width])
                mapping.update(zip(self._vectors, pieces, strict=True))
                for name, field in zip(engagement.FEATURES, self._fields, strict=True):
                    mapping[field] = layout.encode_double(rows.counts[name][i])
                pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]  # bytes keys are valid
            await pipe.execute()
