"""The prediction publisher against a real broker that dies and comes back: no event is lost.

Each test runs its own broker, so stopping it leaves the session's broker alone. The broker
keeps topics in memory, so a restarted one has lost what it held: deliveries are counted by
consuming during each broker lifetime and taking the union.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from prometheus_client import REGISTRY

from homeloop.events import PredictionEvent
from homeloop.settings import Settings
from homeloop.stack.ports import wait_until
from homeloop.stack.process import ServiceProcess
from homeloop.stack.services import Broker, start_broker
from homeloop.topics import BY_NAME
from serving.publisher import PredictionPublisher

pytestmark = pytest.mark.integration

COUNTERS = (
    "homeloop_predictions_published_total",
    "homeloop_predictions_spooled_total",
    "homeloop_predictions_dropped_total",
)


def prediction(i: int) -> PredictionEvent:
    return PredictionEvent(
        prediction_id=uuid.uuid4(),
        listing_id=f"L{i % 50}",
        predicted_price=100_000 + i,
        model_name="homeloop-price",
        model_version="1",
        features={"area_sqm": 84.97, "floor": 11.0, "complex_median_price": None},
        latency_ms=3.5,
    )


def counters() -> dict[str, float]:
    """The process-global counters now; tests compare before and after."""
    return {name: REGISTRY.get_sample_value(name) or 0.0 for name in COUNTERS}


def spooled_files(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / "spool" / settings.topic("predictions")).glob("*.jsonl"))


class BrokerHandle:
    """One test's broker: killed like a crash, restarted with the same command on the same port."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.broker: Broker = start_broker(logs)

    @property
    def address(self) -> str:
        return self.broker.url

    def kill(self) -> None:
        """SIGKILL: nothing more is acknowledged once this returns."""
        popen = self.broker.process.popen
        if popen.poll() is None:
            popen.kill()
            popen.wait()

    def restart(self) -> None:
        self.kill()
        argv = [str(arg) for arg in self.broker.process.popen.args]
        process = ServiceProcess("broker", argv, self.logs / "broker.log", cwd=self.broker.scratch)
        b = self.broker
        self.broker = Broker(b.name, process, b.url, b.port, b.scratch)

    async def ready(self, topic: str) -> None:
        """Wait until it answers, then create the topic as provisioning would."""
        broker = self.broker
        await asyncio.to_thread(
            wait_until, lambda: broker.process.check(broker.healthy), 30, "test broker"
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=self.address)
        await admin.start()
        try:
            partitions = BY_NAME["predictions"].partitions
            with contextlib.suppress(TopicAlreadyExistsError):  # auto-created by a producer
                await admin.create_topics([NewTopic(topic, partitions, 1)])
        finally:
            await admin.close()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.broker.scratch, ignore_errors=True)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerHandle]:
    handle = BrokerHandle(tmp_path / "logs")
    yield handle
    handle.close()


def settings_for(broker: BrokerHandle, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        kafka_bootstrap_servers=broker.address,
        data_dir=tmp_path / "data",
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
    )


async def consume(address: str, topic: str, into: set[UUID]) -> None:
    """Collect prediction ids from ``topic`` until cancelled."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=address, auto_offset_reset="earliest", fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                into.update(
                    PredictionEvent.from_bytes(r.value or b"").prediction_id for r in records
                )
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), 5)


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(f"{what} not true after {timeout:.0f}s")
        await asyncio.sleep(0.05)


def test_broker_crash_under_load_loses_no_prediction(broker: BrokerHandle, tmp_path: Path) -> None:
    total, crash_at = 3_000, 800
    settings = settings_for(broker, tmp_path)
    topic = settings.topic("predictions")
    before = counters()

    async def scenario() -> tuple[list[UUID], set[UUID], PredictionPublisher]:
        await broker.ready(topic)
        published: list[UUID] = []
        delivered: set[UUID] = set()
        publisher = PredictionPublisher(settings, buffer_size=200)
        await publisher.start()
        consumer = asyncio.create_task(consume(broker.address, topic, delivered))
        go = asyncio.Event()
        go.set()

        async def load() -> None:
            for i in range(total):
                await go.wait()
                event = prediction(i)
                publisher.publish(event)
                published.append(event.prediction_id)
                await asyncio.sleep(0.002)

        loader = asyncio.create_task(load())
        await until(lambda: len(published) >= crash_at, 30, f"{crash_at} published")
        # A broker that keeps topics in memory takes what it acknowledged but the consumer had
        # not read yet with it: hold the load for the moment it takes the consumer to catch up
        # with every acknowledgement, then crash the broker with nothing in flight.
        go.clear()

        def all_acked_read() -> bool:
            stats = publisher.stats()
            return (
                stats["buffered"] == 0
                and stats["spooled_pending"] == 0
                and len(delivered) == len(published)
            )

        await until(all_acked_read, 15, "first broker lifetime read back")
        broker.kill()
        go.set()
        await cancel(consumer)

        # Back once the publisher has noticed the outage (its sends timed out), while the
        # load goes on.
        await until(lambda: not publisher.connected, 30, "outage noticed")
        assert publisher.stats()["spooled_pending"] > 0
        assert not loader.done()
        broker.restart()
        await broker.ready(topic)
        consumer = asyncio.create_task(consume(broker.address, topic, delivered))
        await loader
        await until(lambda: delivered >= set(published), 40, "every prediction delivered")
        await until(lambda: publisher.stats()["spooled_pending"] == 0, 10, "spool replayed")
        await publisher.stop()
        await cancel(consumer)
        return published, delivered, publisher

    published, delivered, publisher = asyncio.run(scenario())
    after = counters()

    assert len(set(published)) == total
    assert delivered == set(published)
    assert (
        after["homeloop_predictions_dropped_total"] == before["homeloop_predictions_dropped_total"]
    )
    assert (
        after["homeloop_predictions_spooled_total"] > before["homeloop_predictions_spooled_total"]
    )
    assert (
        after["homeloop_predictions_published_total"]
        - before["homeloop_predictions_published_total"]
        >= total
    )
    stats = publisher.stats()
    assert stats["dropped_total"] == 0 and stats["spooled_total"] > 0
    assert stats["buffered"] == 0 and stats["spooled_pending"] == 0
    assert spooled_files(settings) == []


def test_stop_with_broker_down_spools_and_next_process_replays(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    total = 300
    settings = settings_for(broker, tmp_path)
    topic = settings.topic("predictions")
    broker.kill()  # down from the start: the producer cannot even start
    before = counters()

    async def shut_down_while_down() -> list[UUID]:
        publisher = PredictionPublisher(settings)
        await publisher.start()
        events = [prediction(i) for i in range(total)]
        for event in events:
            publisher.publish(event)
        await publisher.stop(drain_timeout=0.5)
        assert publisher.stats()["buffered"] == 0
        assert publisher.stats()["spooled_pending"] == total
        return [e.prediction_id for e in events]

    published = asyncio.run(shut_down_while_down())
    lines = b"".join(path.read_bytes() for path in spooled_files(settings)).splitlines()
    assert {PredictionEvent.from_bytes(line).prediction_id for line in lines} == set(published)
    assert (
        counters()["homeloop_predictions_spooled_total"]
        - before["homeloop_predictions_spooled_total"]
        == total
    )

    async def next_process() -> set[UUID]:
        broker.restart()
        await broker.ready(topic)
        delivered: set[UUID] = set()
        consumer = asyncio.create_task(consume(broker.address, topic, delivered))
        publisher = PredictionPublisher(settings)
        await publisher.start()
        assert publisher.stats()["spooled_pending"] == total
        await until(lambda: delivered >= set(published), 30, "spooled predictions replayed")
        await until(lambda: publisher.stats()["spooled_pending"] == 0, 10, "spool emptied")
        await publisher.stop()
        await cancel(consumer)
        return delivered

    assert asyncio.run(next_process()) == set(published)
    assert spooled_files(settings) == []
    assert (
        counters()["homeloop_predictions_dropped_total"]
        == before["homeloop_predictions_dropped_total"]
    )
