"""Publishes prediction events to Kafka without making requests wait, and without losing any.

``publish()`` only appends to memory. A background sender drains that buffer in batches and
retries until the broker acknowledges. While the broker is away, events wait: in memory up to
a bound, then in a spool on local disk (JSON lines, one event a line), which the sender replays
once the broker is back, also after a crash or a shutdown. An event is dropped only when the
spool is full too. Delivery is at least once: a retry or a replay can repeat an event, and
consumers dedupe on ``event_id``; order across an outage is not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from functools import lru_cache
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from homeloop.events import PredictionEvent
from homeloop.settings import Settings
from homeloop.topics import message_key
from serving.metrics import (
    PUBLISH_BUFFER,
    PUBLISH_DROPPED,
    PUBLISHED,
    SPOOL_DEPTH,
    SPOOLED,
)
from serving.spool import DiskSpool, Record, decode

logger = logging.getLogger(__name__)

BATCH = 500
# One record batch per partition per send: aiokafka sends one batch per partition per
# produce request, so with its default (16 KiB, ~20 events) a send of 500 events took
# six round trips in a row and the sender fell behind a batch route's 10,000 events/s.
# 500 events are ~450 KB; Kafka's default limit on a batch is 1 MiB.
PARTITION_BATCH_BYTES = 512 * 1024
# A dead broker must fail a send within seconds, so the sender notices and starts spooling;
# aiokafka's default (40 s) would hold a batch in flight for that long.
REQUEST_TIMEOUT_MS = 3_000
# A send not settled by then is taken as failed (aiokafka expires it sooner in practice).
ACK_TIMEOUT_S = 3 * REQUEST_TIMEOUT_MS / 1000
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 2.0
# During an outage memory holds at most this share of the buffer; the rest goes to disk,
# where it survives a crash.
OUTAGE_HIGH_WATER = 0.5
IDLE_POLL_S = 1.0
# A small batch waits this long for company: one produce request costs the event loop
# ~0.3 ms whatever its size, and sent as they came (one request per event or two at
# 1,000 predictions/s) they took CPU the requests needed. Events are not waited for.
LINGER_S = 0.05
SPILL_LOG_EVERY_S = 10.0


class PredictionPublisher:
    """The request path's door to the ``predictions`` topic."""

    def __init__(self, settings: Settings, buffer_size: int | None = None) -> None:
        self._settings = settings
        self._topic = settings.topic("predictions")
        self._buffer_size = buffer_size or settings.publish_buffer_size
        self._batch = min(BATCH, self._buffer_size)
        self._buffer: deque[Record] = deque()  # encoded: bytes cost the GC nothing
        self._inflight: list[Record] = []  # taken from the buffer, not yet acknowledged
        self._spool = DiskSpool(settings.data_dir / "spool" / self._topic)
        self._spool_max_bytes = settings.publish_spool_max_mb * 1024 * 1024
        self._spill: list[bytes] = []  # on their way to the spool
        self._spool_pending = 0  # events in the spool or on their way to it
        self._spool_bytes = 0
        self._spooled_total = 0
        self._dropped_total = 0
        self._spill_logged_at = -SPILL_LOG_EVERY_S
        self._closed = False
        self._wake = asyncio.Event()  # work for the sender
        self._spill_wake = asyncio.Event()  # work for the spool writer
        self._producer: AIOKafkaProducer | None = None
        self._sender: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.connected = False

    def publish(self, event: PredictionEvent) -> None:
        """Hand an event to the background sender; never blocks and never touches the disk."""
        self.publish_records([(message_key(event), event.to_bytes())])

    def publish_records(self, records: list[Record]) -> None:
        """:meth:`publish` for events already encoded (the hot path builds their JSON itself):
        what memory has room for waits there, the rest goes to the spool. The depth gauges
        are the sender's to update (a gauge write per event costs more than the append in
        multiprocess mode)."""
        if self._closed:
            self._drop(len(records), "publisher stopped")
            return
        room = self._memory_limit() - self._in_memory()
        if room > 0:
            self._buffer.extend(records[:room])
            self._wake.set()
        if len(records) > room:
            self._overflow([value for _, value in records[max(room, 0) :]])

    def _overflow(self, values: list[bytes]) -> None:
        """Memory is at its limit: to the spool, with a warning now and then."""
        now = time.monotonic()
        if now - self._spill_logged_at >= SPILL_LOG_EVERY_S:
            self._spill_logged_at = now
            logger.warning(
                "prediction buffer at its limit, spooling to disk topic=%s buffered=%d "
                "spooled_pending=%d connected=%s",
                self._topic,
                self._in_memory(),
                self._spool_pending,
                self.connected,
            )
        self._to_spool(values)
        self._update_gauges()

    def stats(self) -> dict[str, int | bool]:
        """Where this process's events are, for readiness details."""
        return {
            "buffered": self._in_memory(),
            "spooled_pending": self._spool_pending,
            "spooled_total": self._spooled_total,
            "dropped_total": self._dropped_total,
            "connected": self.connected,
        }

    async def start(self) -> None:
        """Count what an earlier process left in the spool, then start sending and spooling."""
        events, size = await asyncio.to_thread(self._spool.scan)
        if events:
            logger.warning(
                "replaying prediction events an earlier run spooled topic=%s events=%d",
                self._topic,
                events,
            )
        self._spool_pending += events
        self._spool_bytes += size
        self._update_gauges()
        self._writer = asyncio.create_task(self._write_loop(), name="prediction-spool-writer")
        self._sender = asyncio.create_task(self._run(), name="prediction-publisher")

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Send what is in memory (within the timeout) and spool the rest: a stop loses nothing."""
        if self._closed:
            return
        if self._sender is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + drain_timeout
            while self._in_memory() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        left = [value for _, value in self._inflight]
        left += [value for _, value in self._buffer]
        self._inflight, self._buffer = [], deque()
        if left:
            logger.warning(
                "spooling unsent prediction events at shutdown topic=%s events=%d",
                self._topic,
                len(left),
            )
            self._to_spool(left)
        self._closed = True
        self._spill_wake.set()
        if self._writer is not None:
            await self._writer
        await self._flush_spill()  # whatever arrived while the writer was finishing
        await asyncio.to_thread(self._spool.seal)
        await self._close_producer()
        self._update_gauges()

    # Memory and spool bookkeeping, on the event loop.

    def _in_memory(self) -> int:
        return len(self._buffer) + len(self._inflight)

    def _memory_limit(self) -> int:
        """The whole buffer while the broker answers; part of it during an outage."""
        if self.connected:
            return self._buffer_size
        return max(1, int(self._buffer_size * OUTAGE_HIGH_WATER))

    def _to_spool(self, lines: list[bytes]) -> None:
        """Queue lines for the spool writer, or drop them if the spool would outgrow its bound."""
        for line in lines:
            size = len(line) + 1
            if self._spool_bytes + size > self._spool_max_bytes:
                self._drop(1, f"spool full ({self._spool_max_bytes} bytes)")
                continue
            self._spill.append(line)
            self._spool_bytes += size
            self._spool_pending += 1
        self._spill_wake.set()

    def _drop(self, count: int, reason: str) -> None:
        self._dropped_total += count
        PUBLISH_DROPPED.inc(count)
        logger.error("dropped prediction events topic=%s count=%d: %s", self._topic, count, reason)

    def _update_gauges(self) -> None:
        PUBLISH_BUFFER.set(self._in_memory())
        SPOOL_DEPTH.set(self._spool_pending)

    # The spool writer: file appends happen in a thread, a batch at a time.

    async def _write_loop(self) -> None:
        while True:
            await self._spill_wake.wait()
            self._spill_wake.clear()
            await self._flush_spill()
            if self._closed:
                return

    async def _flush_spill(self) -> None:
        lines, self._spill = self._spill, []
        if not lines:
            return
        try:
            await asyncio.to_thread(self._spool.append, lines)
        except OSError as exc:
            self._spool_pending -= len(lines)
            self._spool_bytes -= sum(len(line) + 1 for line in lines)
            self._drop(len(lines), f"spool write failed: {exc}")
            return
        self._spooled_total += len(lines)
        SPOOLED.inc(len(lines))
        self._update_gauges()
        self._wake.set()

    # The sender: the buffer first, then one spool segment, in turns, so neither starves.

    async def _run(self) -> None:
        """The sender never gives up: an unexpected error is logged and the work resumed."""
        while True:
            try:
                await self._producer_ready()  # connect early: readiness reads ``connected``
                await self._send_forever()
            except Exception:
                logger.exception("prediction sender failed, resuming in %.1fs", BACKOFF_MAX_S)
                await asyncio.sleep(BACKOFF_MAX_S)

    async def _send_forever(self) -> None:
        while True:
            self._wake.clear()
            worked = False
            if self._buffer or self._inflight:
                await self._linger()
                await self._send_buffered()
                worked = True
            if self._spool_pending > len(self._spill):
                worked = await self._replay_one() or worked
            if not worked:
                # A segment another process holds is retried now and then.
                on_disk = self._spool_pending > len(self._spill)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S if on_disk else None)

    async def _linger(self) -> None:
        """Let a small batch fill up for a moment (not a retry, not a full batch)."""
        if not self._inflight and len(self._buffer) < self._batch and self.connected:
            await asyncio.sleep(LINGER_S)

    async def _send_buffered(self) -> None:
        if not self._inflight:  # else a batch an error interrupted goes first
            count = min(len(self._buffer), self._batch)
            self._inflight = [self._buffer.popleft() for _ in range(count)]
        self._update_gauges()
        await self._deliver(self._inflight)
        self._update_gauges()

    async def _replay_one(self) -> bool:
        """Send the oldest spool segment nobody else holds; delete it once all is acknowledged."""
        segment = await asyncio.to_thread(self._spool.claim_oldest)
        if segment is None:  # only the segment being written is left: close it and take it
            await asyncio.to_thread(self._spool.seal)
            segment = await asyncio.to_thread(self._spool.claim_oldest)
        if segment is None:
            return False
        try:
            records, corrupt = await asyncio.to_thread(decode, segment.lines)
            if corrupt:
                self._drop(corrupt, f"unreadable lines in {segment.path.name}")
            for start in range(0, len(records), self._batch):
                await self._deliver(records[start : start + self._batch])
            await asyncio.to_thread(segment.delete)
        finally:
            segment.release()
        self._spool_pending -= len(segment.lines)
        self._spool_bytes -= segment.size
        logger.info(
            "replayed spooled predictions topic=%s segment=%s events=%d",
            self._topic,
            segment.path.name,
            len(records),
        )
        self._update_gauges()
        return True

    async def _deliver(self, pending: list[Record]) -> None:
        """Send until the broker acknowledges every record, removing them from ``pending``.

        The list is the caller's: if the task is cancelled, what is left in it was not
        acknowledged, which is what ``stop()`` spools.

        A failed attempt (aiokafka has retried for the whole request timeout by then) closes
        the producer, and the next attempt starts a new one once the broker answers, with the
        cluster's metadata read afresh. The old producer would keep sending on what it knew:
        a broker that came back empty (the local tansu keeps topics in memory) acknowledges
        sends to a topic it no longer has, and the events vanish.
        """
        delay = BACKOFF_MIN_S
        while pending:
            producer = await self._producer_ready()
            failed, error = await self._attempt(producer, pending)
            PUBLISHED.inc(len(pending) - len(failed))
            pending[:] = failed
            if not failed:
                self.connected = True
                return
            self.connected = False
            logger.warning(
                "prediction events not acknowledged topic=%s count=%d retry_in=%.1fs error=%r",
                self._topic,
                len(failed),
                delay,
                error,
            )
            await self._close_producer()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _attempt(
        self, producer: AIOKafkaProducer, records: list[Record]
    ) -> tuple[list[Record], BaseException | None]:
        """One try at sending ``records``: those not acknowledged, and an error seen.

        Records go in per-partition batches (the default partitioner's choice, so a
        listing's events keep their partition): one future per batch instead of one per
        event, which is most of the sender's CPU at a few thousand events a second.
        """
        sent: list[tuple[list[Record], asyncio.Future[Any]]] = []
        error: BaseException | None = None
        try:
            partitions = sorted(await producer.partitions_for(self._topic))
            grouped: dict[int, list[Record]] = {}
            for record in records:
                partition = partitions[_partition_index(record[0], len(partitions))]
                grouped.setdefault(partition, []).append(record)
            for partition, group in grouped.items():
                # Building a batch is ~3 µs an event on the event loop: between partitions,
                # requests waiting for the loop go first (a 500-event attempt held it ~2 ms).
                await asyncio.sleep(0)
                batch = producer.create_batch()
                members: list[Record] = []
                for record in group:
                    if batch.append(key=record[0], value=record[1], timestamp=None) is None:
                        sent.append(
                            (
                                members,
                                await producer.send_batch(batch, self._topic, partition=partition),
                            )
                        )
                        batch, members = producer.create_batch(), []
                        batch.append(key=record[0], value=record[1], timestamp=None)
                    members.append(record)
                if members:
                    sent.append(
                        (
                            members,
                            await producer.send_batch(batch, self._topic, partition=partition),
                        )
                    )
        except Exception as exc:  # no metadata or a closed producer: the rest failed
            error = exc
        if sent:
            await asyncio.wait([future for _, future in sent], timeout=ACK_TIMEOUT_S)
        failed: list[Record] = []
        for members, future in sent:
            if not future.done():
                future.add_done_callback(_retrieve)  # abandoned: its outcome no longer matters
                error = error or TimeoutError(f"no acknowledgement in {ACK_TIMEOUT_S:.0f}s")
            elif future.cancelled():
                error = error or asyncio.CancelledError("send cancelled")
            elif future.exception() is not None:
                error = error or future.exception()
            else:
                continue
            failed += members
        attempted = {id(r) for members, _ in sent for r in members}
        failed += [r for r in records if id(r) not in attempted]
        return failed, error

    async def _producer_ready(self) -> AIOKafkaProducer:
        """The producer, started; while the broker is down, retried with backoff."""
        delay = BACKOFF_MIN_S
        while self._producer is None:
            servers = self._settings.kafka_bootstrap_servers
            if servers is None:
                raise RuntimeError("HOMELOOP_KAFKA_BOOTSTRAP_SERVERS not set")
            producer = AIOKafkaProducer(
                bootstrap_servers=servers,
                linger_ms=0,  # the sender lingers itself, before it builds the batches
                max_batch_size=PARTITION_BATCH_BYTES,
                acks=1,
                enable_idempotence=False,
                request_timeout_ms=REQUEST_TIMEOUT_MS,
            )
            try:
                await producer.start()
            except Exception as exc:  # KafkaConnectionError and friends while it is down
                self.connected = False
                with contextlib.suppress(Exception):
                    await producer.stop()
                logger.warning("broker unreachable, retry_in=%.1fs error=%r", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self._producer = producer
            self.connected = True
            logger.info("connected to the broker topic=%s", self._topic)
        return self._producer

    async def _close_producer(self) -> None:
        """Close the producer; bounded, because closing flushes and the broker may be gone."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 2 * REQUEST_TIMEOUT_MS / 1000)


@lru_cache(maxsize=65_536)
def _partition_index(key: bytes, count: int) -> int:
    """Where Kafka's default partitioner puts a key among ``count`` sorted partitions, so a
    listing's events share a partition with every other producer's. Cached: aiokafka's
    murmur2 is pure Python (~4 µs a key, a fifth of the sender's work) and ids repeat."""
    return (murmur2(key) & 0x7FFFFFFF) % count


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an abandoned send's exception as seen, so asyncio does not log it."""
    if not future.cancelled():
        future.exception()
