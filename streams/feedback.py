"""The feedback loop's state: watermark, monitors, triggers and the live snapshot.

The outcome agents (:mod:`streams.outcomes_agent`) feed it; every
``feedback_snapshot_s`` it decides pending attributions, recomputes the business metrics
and realized error from the tables, checks the retrain triggers of the serving champion,
and publishes one compact snapshot to ``monitoring`` (the same figures as Prometheus
gauges). Drift monitors are per model version, built from the training reference the
version carries in MLflow; residual monitors watch the contracts' relative errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from aiokafka import AIOKafkaProducer

from homeloop.clock import event_clock
from homeloop.drift import (
    PREDICTION,
    DriftConfig,
    DriftMonitor,
    DriftReport,
    ResidualConfig,
    ResidualMonitor,
    residual_scale,
)
from homeloop.events import (
    AlertEvent,
    Event,
    MonitoringEvent,
    PredictionEvent,
    RetrainRequest,
)
from homeloop.features import MARKET_FEATURES
from homeloop.model_store import ModelReference, alias_version, load_reference
from homeloop.outcomes import RealizedError, VariantOutcomes, Watermark, is_suspect
from homeloop.registry import CHALLENGER, CHAMPION, Alias
from homeloop.settings import Settings
from homeloop.topics import message_key, topic_for
from homeloop.triggers import Baseline, Firing, Latch, data_growth, mae_degradation, schedule
from streams.feedback_store import FeedbackStore
from streams.metrics import (
    ATTRIBUTIONS,
    BUSINESS,
    CONSUMER_LAG,
    DRIFT_RATIO,
    DRIFT_SCORE,
    DRIFT_WINDOWS,
    MODEL_TEST_MAE,
    PENDING,
    REALIZED_CONTRACTS,
    REALIZED_MAE,
    RESIDUAL_ALARMS,
    RETRAIN_TRIGGERS,
    SUSPECT_CONTRACTS,
)

logger = logging.getLogger(__name__)

COMPONENT = "streams.feedback"
TOP_DRIFTED = 5
MONTH_S = 30 * 86_400


@dataclass
class VersionState:
    """What the loop keeps per model version it has seen served."""

    reference: ModelReference | None = None
    drift: DriftMonitor | None = None
    residuals: ResidualMonitor | None = None
    last_report: DriftReport | None = None
    feature_names: list[str] = field(default_factory=list)
    loading: asyncio.Future[None] | None = None
    unmonitored: int = 0  # rows seen before the monitor was ready

    @property
    def baseline(self) -> Baseline | None:
        ref = self.reference
        if ref is None:
            return None
        return Baseline("", ref.version, ref.test_mae, ref.training_rows, ref.window_end)


@dataclass
class Rates:
    """Events per wall second, between two snapshots."""

    counts: dict[str, int] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)

    def add(self, topic: str, n: int) -> None:
        self.counts[topic] = self.counts.get(topic, 0) + n

    def take(self) -> dict[str, float]:
        now = time.monotonic()
        elapsed = max(now - self.since, 1e-9)
        out = {topic: n / elapsed for topic, n in self.counts.items()}
        self.counts, self.since = {}, now
        return out


class FeedbackLoop:
    """Shared by the two outcome agents and the snapshot timer of one worker."""

    def __init__(
        self,
        settings: Settings,
        store: FeedbackStore,
        producer: AIOKafkaProducer,
        lag: Callable[[], Awaitable[dict[str, int]]] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.producer = producer
        self.lateness = timedelta(days=settings.feedback_max_lateness_days)
        self.clock = event_clock(settings)
        self.cooldown = timedelta(days=settings.feedback_trigger_cooldown_days)
        self.watermark: datetime | None = None
        self._watermark = Watermark()
        self.versions: dict[str, VersionState] = {}
        self.champion: str | None = None
        self.latch = Latch(self.cooldown)
        self.rates = Rates()
        self.last_snapshot: MonitoringEvent | None = None
        # Every alarm, fired as a request or held back by the latch: (event time, monitor,
        # version, what it saw). For the snapshot and for benchmarks.
        self.alarms: deque[tuple[datetime, str, str, dict[str, Any]]] = deque(maxlen=1_000)
        self._lag = lag
        # The ``user-events`` partitions assigned, and those read to their end (set by the
        # worker, from the consumer).
        self.partitions: Callable[[], Awaitable[tuple[set[int], set[int]]]] = _no_partitions
        self._restored = asyncio.Event()
        self._drift_config = DriftConfig(
            window_size=settings.drift_window_size,
            rate_per_s=settings.drift_rate_per_s,
            false_alarms_per_month=settings.drift_false_alarms_per_month,
        )

    # --- start-up ---------------------------------------------------------------------
    async def restore(self) -> None:
        """The fired triggers from the tables (a restart goes on), and the monitors of the
        versions the registry serves, so no prediction goes unwatched. (The watermark starts
        afresh: the partitions' own events set it, the slowest first.)

        Runs while the agents join their groups (loading MLflow and calibrating the
        monitors takes seconds); the feedback agents wait for it with :meth:`ready`."""
        try:
            await self._restore()
        finally:
            self._restored.set()  # a failure is logged by the caller; the loop goes on

    async def ready(self) -> None:
        """Returns once :meth:`restore` has finished."""
        await self._restored.wait()

    async def _restore(self) -> None:
        for version, reason, fired_at in await self.store.fired_triggers(self.settings.model_name):
            self.latch.record(version, reason, fired_at)
        aliases: tuple[Alias, ...] = (CHAMPION, CHALLENGER)
        for alias in aliases:
            served = await asyncio.to_thread(alias_version, self.settings, alias)
            if served is not None:
                self.champion = served if alias == CHAMPION else self.champion
                self._version(served)
        loading = [s.loading for s in self.versions.values() if s.loading is not None]
        await asyncio.gather(*loading)

    # --- fed by the agents --------------------------------------------------------------
    async def advance(self, by_partition: dict[int, list[datetime]]) -> None:
        """Counted events' times, per partition of ``user-events``."""
        for partition, times in by_partition.items():
            self._watermark.update(partition, times)
        self.watermark = self._watermark.current(*await self.partitions())

    async def on_predictions(self, events: list[PredictionEvent]) -> None:
        self.rates.add("predictions", len(events))
        by_version: dict[str, list[PredictionEvent]] = {}
        for event in events:
            by_version.setdefault(event.model_version, []).append(event)
            if event.variant == "champion":
                self.champion = event.model_version
        for version, batch in by_version.items():
            state = self._version(version)
            if state.drift is None:
                state.unmonitored += len(batch)
                continue
            names = state.feature_names
            matrix = np.array(
                [[*(_number(e.features.get(c)) for c in names), e.predicted_price] for e in batch],
                dtype=np.float64,
            )
            newest = max(e.event_time for e in batch)
            for report in state.drift.feed(matrix, [*names, PREDICTION]):
                await self._on_drift_report(version, state, report, newest)

    async def attribute(self) -> None:
        """Decide what can be decided; contracts that count feed the residual monitors."""
        done = await self.store.attribute(is_suspect)
        for how, n in done.decided.items():
            ATTRIBUTIONS.labels(how=how).inc(n)
        if done.suspect:
            SUSPECT_CONTRACTS.inc(done.suspect)
        for error in done.contracts:
            await self._on_contract(error)

    async def _on_contract(self, error: RealizedError) -> None:
        state = self._version(error.model_version)
        if state.residuals is None:
            return
        segments = ["all"] + ([f"region:{error.region_code}"] if error.region_code else [])
        for detection in state.residuals.update(error.residual, segments):
            RESIDUAL_ALARMS.labels(detector=detection.detector, segment=detection.segment).inc()
            self.alarms.append(
                (error.event_time, "residuals", error.model_version, detection.to_dict())
            )
            if error.variant != "champion":
                continue
            evidence = {"monitor": "residuals", **detection.to_dict()}
            shift = detection.after - detection.before
            await self.fire(
                error.model_version,
                Firing("drift", "residual_shift", error.event_time, shift,
                       state.residuals.config.shift, evidence),
            )  # fmt: skip

    async def _on_drift_report(
        self, version: str, state: VersionState, report: DriftReport, at: datetime
    ) -> None:
        state.last_report = report
        DRIFT_SCORE.labels(version=version).set(report.score)
        for feature in (*report.features, *([report.prediction] if report.prediction else [])):
            DRIFT_RATIO.labels(version=version, feature=feature.name).set(feature.ratio)
        DRIFT_WINDOWS.labels(version=version, drifted=str(report.drifted).lower()).inc()
        if report.drifted:
            drifted = [f.name for f in report.top(len(report.features)) if f.drifted]
            self.alarms.append((at, "features", version, {"window": report.window,
                                                          "drifted": drifted}))  # fmt: skip
        if report.drifted and version == self.champion:
            top = report.top(TOP_DRIFTED)
            await self.fire(
                version,
                Firing("drift", "feature_drift", at, report.score, 1.0,
                       {"monitor": "features", "window": report.window, "score": report.score,
                        "drifted": [asdict(f) for f in top if f.drifted]}),
            )  # fmt: skip

    # --- model versions ----------------------------------------------------------------
    def _version(self, version: str) -> VersionState:
        state = self.versions.get(version)
        if state is None:
            state = self.versions[version] = VersionState()
            state.loading = asyncio.ensure_future(self._load(version, state))
        return state

    async def _load(self, version: str, state: VersionState) -> None:
        try:
            reference = await asyncio.to_thread(load_reference, self.settings, version)
            drift = await asyncio.to_thread(
                DriftMonitor,
                reference.summary,
                reference.sample,
                self._drift_config,
                context=MARKET_FEATURES,
            )
        except Exception:  # a version without a reference is served but not monitored
            logger.exception("no training reference for model version %s", version)
            return
        state.reference = reference
        state.feature_names = [c for c in reference.summary["columns"] if c != PREDICTION]
        state.drift = drift
        validation = reference.summary.get("validation_residuals", {})
        state.residuals = ResidualMonitor(
            ResidualConfig(
                scale=residual_scale(reference.summary),
                events_per_month=self.settings.drift_contract_rate_per_s * MONTH_S,
                false_alarms_per_month=self.settings.drift_false_alarms_per_month,
            ),
            residuals=validation.get("relative_sample"),
        )
        if reference.test_mae is not None:
            MODEL_TEST_MAE.labels(version=version).set(reference.test_mae)
        logger.info("monitoring model version %s (%d columns)", version, len(drift.columns))
        if state.unmonitored:
            logger.info("%d predictions of v%s came before its monitor", state.unmonitored, version)

    # --- triggers ------------------------------------------------------------------------
    async def fire(self, version: str, firing: Firing) -> bool:
        """Publish a retrain request and an alert, once per cause and cool-down."""
        if not self.latch.allows(version, firing):
            return False
        request = RetrainRequest(
            model_name=self.settings.model_name,
            reason=firing.reason,
            evidence={"model_version": version, "rule": firing.rule, "value": firing.value,
                      "threshold": firing.threshold, "event_time": firing.at.isoformat(),
                      **firing.evidence},
            requested_by=COMPONENT,
        )  # fmt: skip
        recorded = await self.store.record_trigger(
            self.settings.model_name, version, firing, self.cooldown, request.event_id
        )
        self.latch.record(version, firing.reason, firing.at)
        if not recorded:  # another worker fired it for this period
            return False
        alert = AlertEvent(
            priority=firing.priority,
            rule=firing.rule,
            value=firing.value,
            threshold=firing.threshold,
            action=f"retrain requested ({firing.reason})",
            message=f"model {self.settings.model_name} v{version}: {firing.rule}",
            source=COMPONENT,
        )
        await self._publish(request)
        await self._publish(alert)
        RETRAIN_TRIGGERS.labels(reason=firing.reason).inc()
        logger.warning("retrain requested: %s v%s %s", firing.reason, version, firing.evidence)
        return True

    async def check_triggers(self, outcomes: list[VariantOutcomes]) -> None:
        version, at = self.champion, self.watermark
        if version is None or at is None:
            return
        baseline = self._version(version).baseline
        if baseline is None:
            return
        mine = [o for o in outcomes if o.variant == "champion" and o.model_version == version]
        if mine:
            fired = mae_degradation(baseline, mine[0].mae_7d, mine[0].contracts_7d, at)
            if fired:
                await self.fire(version, fired)
        if baseline.window_end is not None:
            grown = data_growth(baseline, await self.store.new_labels(baseline.window_end), at)
            if grown:
                await self.fire(version, grown)
        due = schedule(baseline, at)
        if due:
            await self.fire(version, due)

    # --- the snapshot --------------------------------------------------------------------
    async def snapshot(self) -> MonitoringEvent | None:
        """Attribute, aggregate, check triggers, publish; None before any event time."""
        await self.attribute()
        at = self.watermark = self._watermark.current(*await self.partitions())
        if at is None:
            return None
        outcomes = await self.store.outcomes(at)
        await self.check_triggers(outcomes)
        metrics: dict[str, float | int | None] = {}
        open_predictions = 0
        for o in outcomes:
            open_predictions += o.predictions_pending
            for name, value in o.as_metrics().items():
                metrics[f"{o.variant}.v{o.model_version}.{name}"] = value
                if name == "mae_7d":
                    REALIZED_MAE.labels(variant=o.variant, version=o.model_version).set(
                        value if value is not None else float("nan")
                    )
                elif name == "contracts_7d":
                    REALIZED_CONTRACTS.labels(o.variant, o.model_version).set(value or 0)
                else:
                    BUSINESS.labels(o.variant, o.model_version, name).set(
                        value if value is not None else float("nan")
                    )
        undecided = await self.store.undecided()
        PENDING.labels(kind="predictions_open").set(open_predictions)
        PENDING.labels(kind="events_unattributed").set(undecided)
        metrics["pending.predictions_open"] = open_predictions
        metrics["pending.events_waiting"] = undecided
        for version, state in self.versions.items():
            report = state.last_report
            if report is None:
                continue
            metrics[f"drift.v{version}.score"] = report.score
            for feature in report.top(TOP_DRIFTED):
                metrics[f"drift.v{version}.{feature.name}"] = feature.ratio
        metrics["alarms.since_start"] = len(self.alarms)
        for topic, rate in self.rates.take().items():
            metrics[f"rate.{topic}_per_s"] = round(rate, 2)
        if self._lag is not None:
            for group, lag in (await self._lag()).items():
                CONSUMER_LAG.labels(group=group).set(lag)
                metrics[f"lag.{group}"] = lag
        event = MonitoringEvent(
            component=COMPONENT,
            interval_s=self.settings.feedback_snapshot_s,
            metrics=metrics,
            labels={"watermark": at.isoformat(), "champion": self.champion or ""},
        )
        await self._publish(event)
        self.last_snapshot = event
        return event

    async def _publish(self, event: Event) -> None:
        topic = self.settings.topic(topic_for(event))
        await self.producer.send_and_wait(topic, event.to_bytes(), key=message_key(event))


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


async def _no_partitions() -> tuple[set[int], set[int]]:
    return set(), set()
