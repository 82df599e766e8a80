"""The faust-streaming app: the feature and feedback agents, the web pages, by a factory.

A factory rather than a module-level app, so importing this module connects to nothing
and tests can build apps with their own topic prefix. The feature agents are batch
agents (:mod:`streams.batch_agent`) run as a faust service: faust gives the worker its
lifecycle, signals, web server and logging; aiokafka gives the agents whole batches.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import faust
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from homeloop import heap
from homeloop.settings import Settings
from streams.batch_agent import BatchAgent
from streams.dead_letters import DeadLetters
from streams.engagement_agent import SWEEP_EVERY_S, EngagementAgent
from streams.feedback import FeedbackLoop
from streams.feedback_store import FeedbackStore
from streams.listing_agent import ListingAgent
from streams.offline_log import OfflineLog
from streams.outcomes_agent import PredictionsAgent, UserEventsAgent

logger = logging.getLogger(__name__)

# Micro-batches: at most this many events, or whatever arrived within this many ms.
BATCH_MAX = 2_000
BATCH_WITHIN_MS = 5


class FeatureStreams(Service):
    """The listing and engagement agents with the connections they share."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.agents: list[BatchAgent] = []
        self.engagement: EngagementAgent | None = None
        self.feedback: FeedbackLoop | None = None

    async def on_start(self) -> None:
        heap.settle(heap.WORKER_YOUNG)  # once more when the feedback loop has loaded
        settings = self.settings
        services = settings.require()
        self.redis = aioredis.from_url(services.redis_url)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=services.kafka_bootstrap_servers, linger_ms=5, acks="all"
        )
        await self.producer.start()
        self.offline = OfflineLog(settings, connections=4)
        letters = settings.topic("dead-letter")
        listing = ListingAgent(
            settings,
            self.redis,
            self.offline,
            DeadLetters(self.producer, letters, ListingAgent.name),
        )
        self.engagement = EngagementAgent(
            settings,
            self.redis,
            self.offline,
            DeadLetters(self.producer, letters, EngagementAgent.name),
        )
        self.feedback = FeedbackLoop(
            settings,
            FeedbackStore(
                self.offline,
                window=timedelta(days=settings.feedback_attribution_days),
                wait_s=settings.feedback_attribution_wait_s,
            ),
            self.producer,
            lag=self._lags,
        )
        handlers: list[Any] = [listing, self.engagement]
        handlers += [
            PredictionsAgent(
                settings, self.feedback, DeadLetters(self.producer, letters, PredictionsAgent.name)
            ),
            UserEventsAgent(
                settings, self.feedback, DeadLetters(self.producer, letters, UserEventsAgent.name)
            ),
        ]
        for handler in handlers:
            agent = BatchAgent(
                settings,
                topic=handler.topic,
                group_id=f"{settings.topic_prefix}homeloop-{handler.name}",
                handler=handler,
                max_records=BATCH_MAX,
                within_ms=BATCH_WITHIN_MS,
                max_in_flight=handler.max_in_flight,
                loop=self.loop,
                beacon=self.beacon,
            )
            self.agents.append(agent)
        outcomes = next(a for a in self.agents if isinstance(a.handler, UserEventsAgent))
        self.feedback.partitions = outcomes.partitions
        # Started together: each joins its consumer group, which takes seconds, in parallel.
        await asyncio.gather(*(self.add_runtime_dependency(agent) for agent in self.agents))

    @Service.task
    async def _restore_feedback(self) -> None:
        """The feedback loop's monitors, restored beside the agents rather than before them:
        loading the registry's versions and calibrating their monitors takes seconds that
        the feature agents need not wait for (the feedback agents wait for it)."""
        assert self.feedback is not None
        try:
            await self.feedback.restore()
        except Exception:
            logger.exception("feedback loop: restoring the monitors failed; starting without")
        heap.settle(heap.WORKER_YOUNG)  # MLflow and the monitors stay: out of the scans

    async def on_stop(self) -> None:
        for agent in self.agents:
            await agent.stop()
        await self.producer.stop()
        await self.offline.close()
        await self.redis.aclose()

    async def _lags(self) -> dict[str, int]:
        return {agent.group_id: await agent.lag() for agent in self.agents}

    @Service.task
    async def _snapshots(self) -> None:
        """The feedback loop's snapshot every ``feedback_snapshot_s`` (a failure is logged
        and the next one tries again)."""
        every = self.settings.feedback_snapshot_s
        while not self.should_stop:
            await self.sleep(every)
            if self.feedback is None:
                continue
            try:
                await self.feedback.snapshot()
            except Exception:
                logger.exception("feedback snapshot failed")

    @Service.timer(SWEEP_EVERY_S)
    async def _sweep(self) -> None:
        if self.engagement is not None:
            await self.engagement.sweep()


def create_app(settings: Settings) -> faust.App:
    services = settings.require()
    data_dir = (settings.data_dir / "faust").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.topic_prefix}homeloop-streams",
        broker=f"kafka://{services.kafka_bootstrap_servers}",
        store="memory://",
        datadir=str(data_dir),
        broker_rebalance_timeout=settings.worker_rebalance_timeout,
        broker_session_timeout=settings.worker_session_timeout,
        broker_heartbeat_interval=settings.worker_session_timeout / 3,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.worker_web_bind,
        web_host=settings.worker_web_bind,
        web_port=settings.worker_web_port,
        topic_allow_declare=True,
        topic_disable_leader=True,
    )

    # The feature agents consume through aiokafka themselves; faust's own consumer would
    # have no topic to subscribe to (aiokafka refuses that), so faust runs without Kafka.
    app.boot_strategy = faust.app.base.BootStrategy(app, enable_kafka=False)
    streams = FeatureStreams(settings)
    app.service(streams)  # type: ignore[arg-type]  # faust takes instances as well
    app.feature_streams = streams  # type: ignore[attr-defined]  # for tests and benchmarks

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp wants the charset apart from the media type.
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "app": app.conf.id})

    return app
