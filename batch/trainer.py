"""The trainer service: retrain requests in, one training at a time, every run accounted for.

Requests (schedule, manual, drift, mae_degradation, data_growth) arrive on
``retrain-requests``. Each is stored in ``retrain_requests`` by its ``event_id`` before its
offset is committed, so a redelivered request is one row and a crash loses none. A burst
becomes one run: the trainer waits until no request has come for ``trainer_debounce_s``
(but never longer than ``trainer_max_wait_s`` after the first), then claims every pending
request for a new ``training_runs`` row and trains; requests arriving meanwhile wait for
the next run. A run interrupted by a crash is marked so at start-up and its requests are
released to the next one. A malformed request goes to ``dead-letter`` with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from batch import training_data
from batch.train import TrainingOutcome, run_training
from homeloop.db import connect
from homeloop.events import DeadLetterEvent, RetrainRequest, utcnow
from homeloop.heartbeat import beat
from homeloop.settings import Settings
from homeloop.topics import message_key, topic_for

logger = logging.getLogger(__name__)

GROUP = "homeloop-trainer"
CONSUMER = "batch.trainer"


def is_due(
    received: list[datetime], now: datetime, debounce: timedelta, max_wait: timedelta
) -> bool:
    """Whether pending requests (their arrival times) should start a run now."""
    if not received:
        return False
    return now - max(received) >= debounce or now - min(received) >= max_wait


def _q(schema: str, text: str) -> sql.Composed:
    return sql.SQL(text).format(schema=sql.Identifier(schema))


def record_request(conn: psycopg.Connection[Any], schema: str, request: RetrainRequest) -> bool:
    """Store a request (once per ``event_id``); True when it is new."""
    cur = conn.execute(
        _q(schema, "INSERT INTO {schema}.retrain_requests (event_id, model_name, reason, "
                   "requested_by, event_time, evidence) VALUES (%s, %s, %s, %s, %s, %s) "
                   "ON CONFLICT (event_id) DO NOTHING"),
        [request.event_id, request.model_name, request.reason, request.requested_by,
         request.event_time, Jsonb(request.evidence)],
    )  # fmt: skip
    return cur.rowcount == 1


def pending(conn: psycopg.Connection[Any], schema: str, model_name: str) -> list[datetime]:
    cur = conn.execute(
        _q(schema, "SELECT received_at FROM {schema}.retrain_requests "
                   "WHERE training_id IS NULL AND model_name = %s"),
        [model_name],
    )  # fmt: skip
    return [row[0] for row in cur.fetchall()]


def claim(
    conn: psycopg.Connection[Any], schema: str, model_name: str, reasons: list[str] | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """A new run and every pending request it serves (committed by the caller)."""
    training_id = conn.execute(
        _q(schema, "INSERT INTO {schema}.training_runs (model_name) VALUES (%s) RETURNING id"),
        [model_name],
    ).fetchone()[0]  # type: ignore[index]
    cur = conn.execute(
        _q(schema, "UPDATE {schema}.retrain_requests SET training_id = %s "
                   "WHERE training_id IS NULL AND model_name = %s "
                   "RETURNING event_id, reason, requested_by, evidence"),
        [training_id, model_name],
    )  # fmt: skip
    requests = [
        {"event_id": str(r[0]), "reason": r[1], "requested_by": r[2], "evidence": r[3]}
        for r in cur.fetchall()
    ]
    all_reasons = sorted({r["reason"] for r in requests} | set(reasons or []))
    conn.execute(
        _q(schema, "UPDATE {schema}.training_runs SET reasons = %s WHERE id = %s"),
        [Jsonb(all_reasons), training_id],
    )
    return int(training_id), requests


def finish(
    conn: psycopg.Connection[Any],
    schema: str,
    training_id: int,
    outcome: TrainingOutcome | None,
    error: str | None = None,
) -> None:
    status = outcome.status if outcome else "failed"
    conn.execute(
        _q(schema, "UPDATE {schema}.training_runs SET finished_at = now(), status = %s, "
                   "mlflow_run_id = %s, version = %s, alias = %s, error = %s WHERE id = %s"),
        [status, outcome.run_id if outcome else None, outcome.version if outcome else None,
         outcome.alias if outcome else None,
         error or ("; ".join(outcome.reasons) if outcome and outcome.reasons else None),
         training_id],
    )  # fmt: skip


def recover(conn: psycopg.Connection[Any], schema: str, model_name: str) -> int:
    """Mark runs left running by a crash as interrupted and release their requests."""
    cur = conn.execute(
        _q(schema, "UPDATE {schema}.training_runs SET status = 'interrupted', "
                   "finished_at = now() WHERE status = 'running' AND model_name = %s "
                   "RETURNING id"),
        [model_name],
    )  # fmt: skip
    ids = [row[0] for row in cur.fetchall()]
    if ids:
        conn.execute(
            _q(schema, "UPDATE {schema}.retrain_requests SET training_id = NULL "
                       "WHERE training_id = ANY(%s)"),
            [ids],
        )  # fmt: skip
    return len(ids)


def train_recorded(
    settings: Settings,
    data: training_data.TrainingData,
    training_id: int,
    *,
    reason: str,
    actor: str,
    progress: Callable[[str], None] | None = None,
) -> TrainingOutcome:
    """One run, its outcome (or failure) written to its ``training_runs`` row."""
    schema = settings.db_schema
    try:
        outcome = run_training(
            settings, data.training, reason=reason, actor=actor, training_id=training_id,
            extra_metrics=data.extra_metrics, progress=progress,
        )  # fmt: skip
    except Exception as exc:
        with connect(settings) as conn:
            finish(conn, schema, training_id, None, f"{type(exc).__name__}: {exc}")
        raise
    with connect(settings) as conn:
        finish(conn, schema, training_id, outcome)
    return outcome


def train_by_hand(
    settings: Settings,
    *,
    source: training_data.Source = "auto",
    n_deals: int = 20_000,
    if_missing: bool = False,
    progress: Callable[[str], None] | None = None,
) -> TrainingOutcome | None:
    """``homeloop train``: a manual run, recorded like the trainer's. With ``if_missing``
    it bootstraps the first model (and its market views) only when no champion exists."""
    if if_missing:
        from batch.first_model import train_on_simulated_history

        return train_on_simulated_history(
            settings, n_deals=n_deals, if_missing=True, progress=progress
        )
    data = training_data.load(settings, source, n_deals)
    with connect(settings) as conn:
        training_id, _ = claim(conn, settings.db_schema, settings.model_name, ["manual"])
    return train_recorded(
        settings, data, training_id, reason="manual", actor="operator", progress=progress
    )


class Trainer:
    """The service: a consumer that records requests and a loop that runs due trainings."""

    def __init__(self, settings: Settings, *, poll_s: float = 1.0) -> None:
        self.settings = settings
        self.poll_s = poll_s
        self.runs: list[TrainingOutcome | BaseException] = []
        self._training: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        settings, schema = self.settings, self.settings.db_schema
        servers = settings.require().kafka_bootstrap_servers
        with connect(settings) as conn:
            if n := recover(conn, schema, settings.model_name):
                logger.warning("released the requests of %d interrupted run(s)", n)
        consumer = AIOKafkaConsumer(
            settings.topic("retrain-requests"),
            bootstrap_servers=servers,
            group_id=settings.topic(GROUP),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.worker_session_timeout * 1000),
            rebalance_timeout_ms=int(settings.worker_rebalance_timeout * 1000),
        )
        producer = AIOKafkaProducer(bootstrap_servers=servers)
        await consumer.start()
        await producer.start()
        stop = stop or asyncio.Event()
        logger.info(
            "trainer ready: consuming %s (debounce %.0f s, at most %.0f s)",
            settings.topic("retrain-requests"), settings.trainer_debounce_s,
            settings.trainer_max_wait_s,
        )  # fmt: skip
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=int(self.poll_s * 1000))
                messages = [m for ms in batches.values() for m in ms]
                if messages:
                    await self._record(messages, producer)
                    await consumer.commit()
                self._maybe_start()
                beat(settings, "trainer")
        finally:
            if self._training is not None:
                await asyncio.shield(self._training)
            await consumer.stop()
            await producer.stop()

    async def _record(self, messages: list[Any], producer: Any) -> None:
        settings = self.settings
        letters = []
        with connect(settings) as conn:
            for m in messages:
                try:
                    request = RetrainRequest.model_validate_json(m.value)
                except (ValidationError, ValueError) as exc:
                    letters.append(
                        DeadLetterEvent(
                            source_topic=m.topic,
                            partition=m.partition,
                            offset=m.offset,
                            key=m.key.decode("utf-8", "replace") if m.key else None,
                            raw=base64.b64encode(m.value or b"").decode(),
                            error=str(exc)[:2000],
                            consumer=CONSUMER,
                        )
                    )
                    continue
                if request.model_name != settings.model_name:
                    logger.info("ignoring a request for model %s", request.model_name)
                    continue
                if record_request(conn, settings.db_schema, request):
                    logger.info("retrain request %s (%s)", request.event_id, request.reason)
        for letter in letters:
            await producer.send_and_wait(
                settings.topic(topic_for(letter)), letter.to_bytes(), key=message_key(letter)
            )

    def _maybe_start(self) -> None:
        if self._training is not None and not self._training.done():
            return
        settings = self.settings
        with connect(settings) as conn:
            received = pending(conn, settings.db_schema, settings.model_name)
        debounce = timedelta(seconds=settings.trainer_debounce_s)
        max_wait = timedelta(seconds=settings.trainer_max_wait_s)
        if is_due(received, utcnow(), debounce, max_wait):
            self._training = asyncio.create_task(self._train())

    async def _train(self) -> None:
        settings = self.settings
        with connect(settings) as conn:
            training_id, requests = claim(conn, settings.db_schema, settings.model_name)
        reasons = sorted({r["reason"] for r in requests})
        logger.info("training run %d for %d request(s): %s", training_id, len(requests), reasons)
        try:
            data = await asyncio.to_thread(training_data.load, settings)
        except Exception as exc:  # recorded in training_runs; the service goes on
            logger.exception("training run %d could not load its data", training_id)
            with connect(settings) as conn:
                finish(conn, settings.db_schema, training_id, None, f"{type(exc).__name__}: {exc}")
            self.runs.append(exc)
            return
        try:
            outcome = await asyncio.to_thread(
                train_recorded, settings, data, training_id,
                reason="+".join(reasons) or "manual", actor="trainer",
            )  # fmt: skip
        except Exception as exc:  # train_recorded wrote the failure; the service goes on
            logger.exception("training run %d failed", training_id)
            self.runs.append(exc)
            return
        self.runs.append(outcome)


def run_trainer(settings: Settings) -> None:
    asyncio.run(Trainer(settings).run())
