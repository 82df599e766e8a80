"""A batch agent: a consumer-group member that hands whole fetches to a handler.

faust's stream path costs tens of microseconds per event (a plain agent does ~8,500
events/s here), which caps an agent far below the 20,000 events/s the feature streams
need. A batch agent runs inside the faust app (its lifecycle, web server and metrics)
but takes records from aiokafka in batches of up to ``max_records``, waiting at most
``within_ms`` for a batch to fill, and commits the batch's offsets only after the handler
has returned: at-least-once, with idempotent handlers making replays harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from mode import Service

from homeloop.settings import Settings

logger = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord  # raw bytes: the agents decode deliberately
Handler = Callable[[Sequence[Record]], Awaitable[Awaitable[None] | None]]
# Batches whose tail (the offline append) may still be running: one append that stalls
# must not hold up the online writes behind it (16 is about 1.5 s at 20,000 events/s).
MAX_TAILS = 16
# With nothing fetched and nothing under way, the loop and the broker's fetch both wait this
# long for data. The broker answers a fetch as soon as data arrives (an event's latency
# through an idle worker was the same, ~10 ms, with 5 and 100), while polling every
# ``within_ms`` kept an idle worker's four agents at ~0.23 cores (0.05 with this), CPU
# the busy agent did not get.
IDLE_WAIT_MS = 100
# Offsets of finished batches are committed together at most this often (and whenever the
# agent goes idle or stops): each commit is a write at the broker, and at 20,000 events/s
# one per batch was 20-30 a second. A crash replays at most this much more, which the
# idempotent handlers make harmless.
COMMIT_EVERY_S = 0.2


@dataclass
class _InFlight:
    """One batch under way: its handler's phase, its tail's, and the offsets it covers."""

    done: asyncio.Future[None]
    head_task: asyncio.Future[None]
    head_done: asyncio.Event
    offsets: dict[TopicPartition, int]

    @classmethod
    def start(
        cls, handler: Handler, records: list[Record], offsets: dict[TopicPartition, int]
    ) -> _InFlight:
        head_done = asyncio.Event()
        head: asyncio.Future[Awaitable[None] | None] = asyncio.ensure_future(handler(records))

        async def run() -> None:
            try:
                tail = await head
            finally:
                head_done.set()
            if tail is not None:
                await tail

        return cls(asyncio.ensure_future(run()), head, head_done, offsets)  # type: ignore[arg-type]


class BatchAgent(Service):
    """Consumes ``topic`` as group ``group_id`` and calls ``handler`` once per fetch."""

    def __init__(
        self,
        settings: Settings,
        *,
        topic: str,
        group_id: str,
        handler: Handler,
        max_records: int = 2_000,
        within_ms: int = 5,
        max_in_flight: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topic = topic
        self.group_id = group_id
        self.handler = handler
        self.max_records = max_records
        self.within_ms = within_ms
        self.max_in_flight = max_in_flight
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned = asyncio.Event()
        self._consuming = False
        self._consumed = asyncio.Event()  # the consume loop has finished and committed

    @property
    def label(self) -> str:
        return f"BatchAgent[{self.group_id}]"

    async def on_start(self) -> None:
        session_ms = int(self.settings.worker_session_timeout * 1000)
        self.consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.settings.require().kafka_bootstrap_servers,
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=session_ms // 3,
            rebalance_timeout_ms=int(self.settings.worker_rebalance_timeout * 1000),
            max_poll_records=self.max_records,
            fetch_max_wait_ms=max(self.within_ms, IDLE_WAIT_MS),
        )
        await self.consumer.start()

    async def on_stop(self) -> None:
        # mode calls this before it cancels the service's tasks: let the consume loop see
        # ``should_stop``, finish what is under way and commit it while the consumer still
        # has its group (committing through a stopped consumer waits for a coordinator
        # forever). A handler stuck longer than the session timeout is cancelled instead.
        if self._consuming:
            with contextlib.suppress(TimeoutError):
                timeout = self.settings.worker_session_timeout
                await asyncio.wait_for(self._consumed.wait(), timeout)
        if self.consumer is not None:
            await self.consumer.stop()  # leaves the group, so a restart need not wait

    async def lag(self) -> int:
        """Records on the assigned partitions not yet fetched (as of the last fetch)."""
        consumer = self.consumer
        if consumer is None:
            return 0
        behind = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None:
                behind += max(0, high - await consumer.position(tp))
        return behind

    async def partitions(self) -> tuple[set[int], set[int]]:
        """The assigned partitions, and those read to their end (as of the last fetch)."""
        consumer = self.consumer
        if consumer is None:
            return set(), set()
        assigned, done = set(), set()
        for tp in consumer.assignment():
            assigned.add(tp.partition)
            high = consumer.highwater(tp)
            if high is not None and await consumer.position(tp) >= high:
                done.add(tp.partition)
        return assigned, done

    @Service.task
    async def _consume(self) -> None:
        """Fetch, hand over, commit in order.

        A handler may return a *tail*: work that must finish before the batch's offsets
        are committed but need not hold up the next batch (the offline append, while the
        online write, which makes the values readable, stays in the handler). Up to
        ``max_in_flight`` handlers run at once, and up to ``MAX_TAILS`` batches wait for
        their tails. While all slots are busy, records keep accumulating into the next
        batch (up to ``max_records``), so batches grow with the load instead of queueing.
        Offsets are committed in order, once a batch and every batch before it are done.
        """
        consumer = self.consumer
        assert consumer is not None
        self._consuming = True
        pending: deque[_InFlight] = deque()
        buffer: list[Record] = []
        offsets: dict[TopicPartition, int] = {}
        done: dict[TopicPartition, int] = {}  # finished, not yet committed
        committed_at = time.monotonic()
        failed = False  # a handler raised: nothing after its batch may be committed
        try:
            while not self.should_stop:
                room = self.max_records - len(buffer)
                if room > 0:
                    # Waiting long only when idle: a batch under way may finish meanwhile,
                    # and what was buffered must then go without waiting for new data.
                    wait_ms = self.within_ms if buffer or pending else IDLE_WAIT_MS
                    batches = await consumer.getmany(timeout_ms=wait_ms, max_records=room)
                    if consumer.assignment():
                        self.assigned.set()
                    for tp, part in batches.items():
                        if part:
                            buffer += part
                            offsets[tp] = part[-1].offset + 1
                elif pending:  # full: wait until a handler or the oldest batch is done
                    waits = [b.head_task for b in pending if not b.head_done.is_set()]
                    await asyncio.wait([pending[0].done, *waits], return_when=FIRST_COMPLETED)
                while pending and pending[0].done.done():
                    try:
                        done.update(await self._finish(pending.popleft()))
                    except BaseException:
                        failed = True
                        raise
                if done and (not pending or time.monotonic() - committed_at >= COMMIT_EVERY_S):
                    await self._commit(consumer, done)
                    done, committed_at = {}, time.monotonic()
                heads = sum(1 for b in pending if not b.head_done.is_set())
                if buffer and heads < self.max_in_flight and len(pending) < MAX_TAILS:
                    pending.append(_InFlight.start(self.handler, buffer, offsets))
                    buffer, offsets = [], {}
        finally:
            try:
                while pending and not failed:  # a clean stop finishes what is under way
                    done.update(await self._finish(pending.popleft()))
                if done:  # batches that finished before any failure
                    await self._commit(consumer, done)
            finally:
                self._consumed.set()

    async def _finish(self, batch: _InFlight) -> dict[TopicPartition, int]:
        """The batch's offsets, once it is done (a handler that fails stops the agent: its
        offsets, and those of any batch after it, are not committed)."""
        await batch.done
        return batch.offsets

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)  # the positions just handled: after the writes
        except CommitFailedError as exc:  # rebalanced meanwhile: the new owner replays
            logger.warning("%s: commit failed after a rebalance: %s", self.label, exc)
