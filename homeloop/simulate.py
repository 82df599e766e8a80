"""The simulator at the edge: drives the market model onto the real topics and the real API.

Listings go to ``listings``; simulated users ask the prediction API for a price, react to
how good it is, and their clicks, inquiries and contracts go to ``user-events``. A
consumer counts what comes back on ``predictions`` and ``dead-letter``, so the report
shows the whole loop closing, not just the requests sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from homeloop.events import Event, ListingEvent, MonitoringEvent
from homeloop.heartbeat import beat
from homeloop.market import Market, SimClock, UserModel
from homeloop.settings import Settings
from homeloop.topics import message_key, topic_for

logger = logging.getLogger(__name__)

# A listing is offered to users only after this many wall seconds, so the stream
# worker has written its features; earlier requests would be honest 404s.
FEATURE_GRACE_S = 1.0
REPORT_EVERY_S = 3.0
SHOCK_DELAY = timedelta(days=7)
SHOCK_DURATION = timedelta(days=90)


@dataclass
class LoopStats:
    """Counters of one simulator run, for the periodic report and for tests."""

    listings: int = 0
    predictions_ok: int = 0
    predictions_missing: int = 0
    predictions_failed: int = 0
    clicks: int = 0
    inquiries: int = 0
    contracts: int = 0
    on_topic: int = 0
    dead_letters: int = 0
    retrain_requests: int = 0
    feedback: dict[str, float | int | None] = field(default_factory=dict)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=5_000))
    abs_errors: deque[float] = field(default_factory=lambda: deque(maxlen=5_000))

    def latency(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


class Simulation:
    """One run of the simulated marketplace against real services."""

    def __init__(
        self, settings: Settings, api_url: str, rate: float, shock: str | None = None
    ) -> None:
        self.settings = settings
        self.api_url = api_url.rstrip("/")
        self.rate = rate
        self.market = Market(seed=settings.simulator_seed)
        if shock is not None:
            # The design's shock: the region's level falls 10% over three months, starting
            # one simulated week in so the report shows the market before it.
            self.market.shock(shock, -0.10, self.market.start + SHOCK_DELAY, SHOCK_DURATION)
        self.users = UserModel(seed=settings.simulator_seed + 1)
        self.clock = SimClock(
            start=self.market.start,
            time_scale=settings.time_scale,
            wall_origin=settings.sim_started_at,
        )
        self.rng = random.Random(settings.simulator_seed + 2)
        self.stats = LoopStats()
        self._ready: deque[tuple[float, str]] = deque()
        self._offered: list[str] = []
        self._producer: AIOKafkaProducer | None = None
        self._pipeline_ready = asyncio.Event()
        self._first_listing: str | None = None

    async def _send(self, event: Event) -> None:
        assert self._producer is not None
        topic = self.settings.topic(topic_for(event))
        await self._producer.send(topic, event.to_bytes(), key=message_key(event))

    async def _listings(self, stop: asyncio.Event) -> None:
        """New listings at ``rate`` per second, sent in ticks of 100 ms."""
        per_tick = self.rate / 10
        owed = 0.0
        while not stop.is_set():
            owed += per_tick
            while owed >= 1:
                owed -= 1
                event: ListingEvent = self.market.new_listing(self.clock.now())
                await self._send(event)
                self._ready.append((time.monotonic() + FEATURE_GRACE_S, event.listing_id))
                self._first_listing = self._first_listing or event.listing_id
                self.stats.listings += 1
            await asyncio.sleep(0.1)

    def _pick_listing(self) -> str | None:
        now = time.monotonic()
        while self._ready and self._ready[0][0] <= now:
            self._offered.append(self._ready.popleft()[1])
        if not self._offered:
            return None
        return self.rng.choice(self._offered[-2_000:])

    async def _wait_for_pipeline(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        """Hold the users until the first listing is served: the worker may still be joining."""
        while not stop.is_set():
            if self._first_listing is not None:
                response = await client.post(
                    "/v1/predictions", json={"listing_id": self._first_listing}
                )
                if response.status_code == 200:
                    self._pipeline_ready.set()
                    return
            await asyncio.sleep(0.2)

    async def _user(self, client: httpx.AsyncClient, stop: asyncio.Event, pace_s: float) -> None:
        """One simulated user: ask for a price, react, repeat."""
        await self._pipeline_ready.wait()
        while not stop.is_set():
            listing_id = self._pick_listing()
            if listing_id is None:
                await asyncio.sleep(0.1)
                continue
            user_id = self.users.pick_user(self.rng)
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/v1/predictions", json={"listing_id": listing_id, "user_id": user_id}
                )
            except httpx.HTTPError as exc:
                self.stats.predictions_failed += 1
                logger.debug("prediction request failed: %s", exc)
                await asyncio.sleep(pace_s)
                continue
            self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code == 404:
                self.stats.predictions_missing += 1
            elif response.status_code != 200:
                self.stats.predictions_failed += 1
            else:
                self.stats.predictions_ok += 1
                await self._react(listing_id, user_id, response.json())
            await asyncio.sleep(pace_s)

    async def _react(self, listing_id: str, user_id: str, body: dict) -> None:
        listing = self.market.listing(listing_id)
        at = self.clock.now()
        self.stats.abs_errors.append(abs(body["price"] - self.market.true_price(listing, at)))
        for event in self.users.react(
            listing,
            shown_price=body["price"],
            at=at,
            rng=self.rng,
            prediction_id=body["prediction_id"],
            user_id=user_id,
            market=self.market,
        ):
            await self._send(event)
            if event.type == "click":
                self.stats.clicks += 1
            elif event.type == "inquiry":
                self.stats.inquiries += 1
            else:
                self.stats.contracts += 1

    async def _watch_topics(self, stop: asyncio.Event) -> None:
        """Count prediction events, dead letters and retrain requests as they come back from
        the broker, and keep the feedback loop's newest snapshot (``monitoring``)."""
        predictions = self.settings.topic("predictions")
        monitoring = self.settings.topic("monitoring")
        requests = self.settings.topic("retrain-requests")
        consumer = AIOKafkaConsumer(
            predictions,
            monitoring,
            requests,
            self.settings.topic("dead-letter"),
            bootstrap_servers=self.settings.require().kafka_bootstrap_servers,
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    if tp.topic == predictions:
                        self.stats.on_topic += len(records)
                    elif tp.topic == requests:
                        self.stats.retrain_requests += len(records)
                    elif tp.topic == monitoring:
                        for record in records:
                            snapshot = MonitoringEvent.from_bytes(record.value or b"{}")
                            if snapshot.component == "streams.feedback":
                                self.stats.feedback = snapshot.metrics
                    else:
                        self.stats.dead_letters += len(records)
        finally:
            await consumer.stop()

    def report_line(self, elapsed: float) -> str:
        s = self.stats
        mae = float(np.mean(s.abs_errors)) if s.abs_errors else float("nan")
        return (
            f"[{elapsed:6.0f}s sim {self.clock.now():%Y-%m-%d}] "
            f"listings {s.listings:,} │ predictions {s.predictions_ok:,} ok "
            f"{s.predictions_missing:,} not-found {s.predictions_failed:,} failed │ "
            f"p50 {s.latency(50):.1f} ms p99 {s.latency(99):.1f} ms │ "
            f"on topic {s.on_topic:,} │ clicks {s.clicks:,} inquiries {s.inquiries:,} "
            f"contracts {s.contracts:,} │ MAE vs truth {mae:,.0f}만원 │ "
            f"dead letters {s.dead_letters}{self.feedback_line()}"
        )

    def feedback_line(self) -> str:
        """What the feedback loop reports: realized error, pending labels, drift, requests."""
        f = self.stats.feedback
        if not f:
            return ""
        mae = next(
            (v for k, v in f.items() if k.startswith("champion.") and k.endswith(".mae_7d")), None
        )
        contracts = next((v for k, v in f.items() if k.endswith(".contracts_7d")), 0)
        drift = max((v or 0.0 for k, v in f.items() if k.endswith(".score")), default=0.0)
        realized = (
            f"{mae:,.0f}만원 over {contracts} contracts" if mae is not None else "no contracts yet"
        )
        return (
            f"\n    loop: realized MAE 7d {realized} │ open predictions "
            f"{f.get('pending.predictions_open', 0):,} │ drift score {drift:.2f} │ "
            f"retrain requests {self.stats.retrain_requests}"
        )

    async def run(
        self,
        duration: float | None,
        report: Callable[[str], None] | None = None,
        users: int = 8,
        stop: asyncio.Event | None = None,
    ) -> LoopStats:
        stop = stop or asyncio.Event()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.require().kafka_bootstrap_servers, linger_ms=5
        )
        await self._producer.start()
        started = time.monotonic()
        pace_s = users / max(self.rate * 2, 1.0)  # about two price requests per new listing
        try:
            async with httpx.AsyncClient(base_url=self.api_url, timeout=5.0) as client:
                tasks = [
                    asyncio.create_task(self._listings(stop)),
                    asyncio.create_task(self._watch_topics(stop)),
                    asyncio.create_task(self._wait_for_pipeline(client, stop)),
                    *(asyncio.create_task(self._user(client, stop, pace_s)) for _ in range(users)),
                ]
                next_report = started + REPORT_EVERY_S
                while not stop.is_set():
                    now = time.monotonic()
                    if duration is not None and now - started >= duration:
                        break
                    if now >= next_report:
                        beat(self.settings, "simulator")
                        if report is not None:
                            report(self.report_line(now - started))
                        next_report += REPORT_EVERY_S
                    await asyncio.sleep(0.1)
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await self._producer.flush()
            await self._producer.stop()
        if report is not None:
            report(self.report_line(time.monotonic() - started))
        return self.stats


def run_simulator(
    settings: Settings,
    api_url: str,
    duration: float | None,
    rate: float,
    shock: str | None = None,
) -> LoopStats:
    """Run until ``duration`` passes or SIGINT/SIGTERM, printing a line every few seconds."""
    console = Console(soft_wrap=True)

    async def main() -> LoopStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        simulation = Simulation(settings, api_url, rate, shock=shock)
        return await simulation.run(duration, report=console.print, stop=stop)

    return asyncio.run(main())
