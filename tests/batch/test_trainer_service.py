"""The trainer service on the real broker, PostgreSQL and MLflow: a burst of requests (one of
them delivered twice, one malformed) becomes one recorded run; a crash's run is released."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaProducer

from batch.trainer import Trainer, claim, recover
from homeloop.db import connect
from homeloop.events import RetrainRequest
from homeloop.settings import Settings
from homeloop.topics import message_key
from tests.topics import read_topic

pytestmark = pytest.mark.integration


async def _send(settings: Settings, values: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.require().kafka_bootstrap_servers)
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(settings.topic("retrain-requests"), value, key=key)
    finally:
        await producer.stop()


async def _serve_until_a_run(trainer: Trainer, timeout: float = 120.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(trainer.run(stop))
    deadline = asyncio.get_running_loop().time() + timeout
    while not trainer.runs and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    stop.set()
    await task


def test_a_burst_of_requests_makes_one_recorded_run(settings: Settings) -> None:
    mine = settings.model_copy(update={"trainer_debounce_s": 1.0, "trainer_simulated_deals": 2_000})
    requests = [
        RetrainRequest(model_name=mine.model_name, reason=reason, evidence={"n": i})
        for i, reason in enumerate(("drift", "mae_degradation", "schedule"))
    ]
    values = [(message_key(r), r.to_bytes()) for r in requests]
    values.append(values[0])  # redelivered: still one request
    values.append((b"x", b'{"reason": "because"}'))  # malformed
    asyncio.run(_send(mine, values))

    trainer = Trainer(mine, poll_s=0.2)
    asyncio.run(_serve_until_a_run(trainer))
    (outcome,) = trainer.runs
    assert not isinstance(outcome, BaseException), outcome
    assert outcome.status == "registered"

    schema = mine.db_schema
    with connect(mine) as conn:
        runs = conn.execute(
            f'SELECT id, status, reasons, mlflow_run_id, version FROM "{schema}".training_runs'
        ).fetchall()
        linked = conn.execute(
            f'SELECT reason, training_id FROM "{schema}".retrain_requests ORDER BY reason'
        ).fetchall()
    assert len(runs) == 1
    run_id, status, reasons, mlflow_run, version = runs[0]
    assert (status, version, mlflow_run) == ("registered", outcome.version, outcome.run_id)
    assert reasons == ["drift", "mae_degradation", "schedule"]
    assert linked == [("drift", run_id), ("mae_degradation", run_id), ("schedule", run_id)]

    letters = [json.loads(v) for v in read_topic(mine, "dead-letter", want=1)]
    assert len(letters) == 1 and letters[0]["consumer"] == "batch.trainer"
    assert "model_name" in letters[0]["error"]


def test_a_run_interrupted_by_a_crash_releases_its_requests(settings: Settings) -> None:
    schema = settings.db_schema
    request = RetrainRequest(model_name=settings.model_name, reason="manual")
    with connect(settings) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".retrain_requests (event_id, model_name, reason, '
            "requested_by, event_time) VALUES (%s, %s, %s, %s, %s)",
            [request.event_id, request.model_name, request.reason, "test", request.event_time],
        )
        training_id, claimed = claim(conn, schema, settings.model_name)
    assert len(claimed) == 1
    with connect(settings) as conn:  # the trainer restarts
        assert recover(conn, schema, settings.model_name) == 1
        status = conn.execute(
            f'SELECT status FROM "{schema}".training_runs WHERE id = %s', [training_id]
        ).fetchone()
        pending = conn.execute(
            f'SELECT count(*) FROM "{schema}".retrain_requests WHERE training_id IS NULL'
        ).fetchone()
    assert status == ("interrupted",) and pending == (1,)
