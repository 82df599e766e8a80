"""The whole thin loop on real parts: listings → agent → Feast/Redis → API → predictions.

The worker and the API run as their own processes (``homeloop worker``, ``homeloop serve``),
as they are deployed; the test talks to them only through Kafka, HTTP and the stores.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from batch.train import run_training
from homeloop.events import DeadLetterEvent, PredictionEvent, UserEvent
from homeloop.features import LISTING_FEATURES, FeatureRow, feature_vector, listing_features
from homeloop.featurestore import LISTING_VIEW, feature_store
from homeloop.online_reader import OnlineReader
from homeloop.settings import Settings
from homeloop.simulate import Simulation
from homeloop.stack import provision
from homeloop.stack.ports import free_port
from homeloop.stack.process import terminate_all
from serving.model_slots import load_alias
from streams.decoding import Decoded, decode
from tests.conftest import isolated
from tests.factories import listing_event as listing
from tests.factories import synthetic_deals
from tests.topics import read_topic

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 120.0


@dataclass
class Loop:
    settings: Settings
    api_url: str
    worker_url: str
    logs: Path


def _spawn(command: str, settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "homeloop.cli", command],
            env={**os.environ, **settings.as_env()},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="module")
def loop(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    tmp = tmp_path_factory.mktemp("loop")
    settings = isolated(stack_settings, tmp / "data").model_copy(
        update={"api_port": free_port(), "worker_web_port": free_port()}
    )
    provision(settings)
    run_training(settings, synthetic_deals())
    children = [
        _spawn("worker", settings, tmp / "worker.log"),
        _spawn("serve", settings, tmp / "serve.log"),
    ]
    api_url = f"http://127.0.0.1:{settings.api_port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            for child in children:
                assert child.poll() is None, (tmp / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"{api_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serving did not become ready"
            time.sleep(0.5)
        yield Loop(settings, api_url, f"http://127.0.0.1:{settings.worker_web_port}", tmp)
    finally:
        terminate_all(children)


async def produce(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.require().kafka_bootstrap_servers)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(settings.topic(topic), value, key=key)
    finally:
        await producer.stop()


def predict_when_ready(api_url: str, listing_id: str, timeout: float = 90) -> dict:
    """The first 200 answer for a listing, waiting for the agent to write its features."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.post(
            f"{api_url}/v1/predictions", json={"listing_id": listing_id, "user_id": "u1"}
        )
        if response.status_code == 200:
            return dict(response.json())
        assert response.status_code == 404, response.text
        assert time.monotonic() < deadline, f"{listing_id} never became predictable"
        time.sleep(0.2)


async def read_row(settings: Settings, listing_id: str) -> FeatureRow:
    import redis.asyncio as aioredis

    client = aioredis.from_url(settings.require().redis_url)
    try:
        return (await OnlineReader(client, settings.feast_project).read([listing_id])).row(0)
    finally:
        await client.aclose()


def test_served_price_is_the_model_on_the_features_the_agent_wrote(loop: Loop) -> None:
    event = listing("LOOP-1")
    asyncio.run(produce(loop.settings, "listings", [(b"LOOP-1", event.to_bytes())]))
    body = predict_when_ready(loop.api_url, "LOOP-1")

    # What the agent wrote is exactly what the shared formula computes (read through Feast).
    model = load_alias(loop.settings)
    online = (
        feature_store(loop.settings)
        .get_online_features(
            features=[f"{LISTING_VIEW}:{name}" for name in LISTING_FEATURES],
            entity_rows=[{"listing_id": "LOOP-1"}],
        )
        .to_dict()
    )
    written = {name: online[name][0] for name in LISTING_FEATURES}
    assert written == pytest.approx(listing_features(event), nan_ok=True)

    # And the served price is the registered model's prediction on the full online vector.
    row = asyncio.run(read_row(loop.settings, "LOOP-1"))
    assert {k: row[k] for k in LISTING_FEATURES} == pytest.approx(written)
    expected = round(float(model.predict(np.asarray([feature_vector(row, model.features)]))[0]))
    assert body["price"] == expected
    assert (body["model_name"], body["model_version"], body["variant"]) == (
        loop.settings.model_name,
        model.version,
        "champion",
    )

    # The prediction went back onto `predictions` with the features used.
    published = [
        PredictionEvent.from_bytes(v)
        for v in read_topic(loop.settings, "predictions", want=1, timeout=60)
    ]
    mine = [p for p in published if str(p.prediction_id) == body["prediction_id"]]
    assert len(mine) == 1
    assert mine[0].predicted_price == body["price"]
    assert mine[0].user_id == "u1"
    assert mine[0].features == pytest.approx(row, nan_ok=True)


def test_malformed_events_are_dead_lettered_and_the_agent_goes_on(loop: Loop) -> None:
    bad_schema = listing("LOOP-BAD").model_dump(mode="json") | {"region_code": "oops"}

    asyncio.run(
        produce(
            loop.settings,
            "listings",
            [
                (b"x", b"\x00not json"),
                (b"LOOP-BAD", json.dumps(bad_schema).encode()),
                (b"LOOP-2", listing("LOOP-2").to_bytes()),
            ],
        )
    )
    asyncio.run(
        produce(
            loop.settings,
            "user-events",
            [
                (b"LOOP-2", b'{"type": "purchase"}'),
                (
                    b"LOOP-2",
                    UserEvent(
                        type="contract", user_id="u1", listing_id="LOOP-2", contract_price=99_000
                    ).to_bytes(),
                ),
            ],
        )
    )
    # The good listing after the bad ones is served: the agent kept going.
    assert predict_when_ready(loop.api_url, "LOOP-2")["price"] > 0

    letters = [
        DeadLetterEvent.from_bytes(v)
        for v in read_topic(loop.settings, "dead-letter", want=4, timeout=60)
    ]
    by_raw = {base64.b64decode(letter.raw): letter for letter in letters}
    assert by_raw[b"\x00not json"].error.startswith("not_json")
    assert by_raw[b"\x00not json"].source_topic == loop.settings.topic("listings")
    assert by_raw[b"\x00not json"].offset is not None
    schema_letter = by_raw[json.dumps(bad_schema).encode()]
    assert schema_letter.error.startswith("invalid") and "region_code" in schema_letter.error
    purchase = [
        letter.consumer
        for letter in letters
        if base64.b64decode(letter.raw) == b'{"type": "purchase"}'
    ]
    assert sorted(purchase) == ["engagement-features", "feedback-outcomes"]  # each consumer
    assert len(letters) == 4  # the valid contract was not dead-lettered

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(httpx.get(f"{loop.worker_url}/metrics").text)
        for s in family.samples
    }
    listings_topic = loop.settings.topic("listings")
    dead = ("homeloop_dead_letters_total", (("reason", "not_json"), ("topic", listings_topic)))
    assert samples[dead] == 1
    contracts = (
        "homeloop_worker_events_total",
        (("outcome", "contract"), ("topic", loop.settings.topic("user-events"))),
    )
    assert samples[contracts] == 1


def test_bad_requests_get_clear_answers(loop: Loop) -> None:
    unknown = httpx.post(f"{loop.api_url}/v1/predictions", json={"listing_id": "NOPE-404"})
    assert unknown.status_code == 404
    assert "NOPE-404" in unknown.json()["detail"]

    missing = httpx.post(f"{loop.api_url}/v1/predictions", json={"user_id": "u1"})
    assert missing.status_code == 422
    assert "listing_id" in missing.json()["detail"][0]["msg"]

    empty = httpx.post(f"{loop.api_url}/v1/predictions", json={"listing_id": ""})
    assert empty.status_code == 422

    models = httpx.get(f"{loop.api_url}/v1/models").json()["models"]
    assert [(m["slot"], m["traffic_share"]) for m in models] == [("champion", 1.0)]
    ready = httpx.get(f"{loop.api_url}/readyz").json()
    assert ready["ready"] is True
    assert ready["checks"] == {"model": "ok", "online_store": "ok", "broker": "ok"}


def test_the_simulator_closes_the_loop(loop: Loop) -> None:
    """Simulated users see served prices and their clicks and contracts land on user-events."""
    settings = loop.settings.model_copy(update={"simulator_seed": 1234})
    stats = asyncio.run(Simulation(settings, loop.api_url, rate=50).run(duration=12, users=8))
    assert stats.listings >= 400
    assert stats.predictions_ok > 50
    assert stats.predictions_failed == 0
    sent = stats.clicks + stats.inquiries + stats.contracts
    assert stats.clicks > 0 and sent > 0

    raw = read_topic(settings, "user-events", want=sent, timeout=60)
    decoded = [decode(v, UserEvent) for v in raw]  # earlier tests left malformed ones too
    simulated = [d.event for d in decoded if isinstance(d, Decoded) and d.event.user_id[0] == "U"]
    assert len(simulated) == sent
    assert sum(e.type == "click" for e in simulated) == stats.clicks
    contracts = [e for e in simulated if e.type == "contract"]
    assert len(contracts) == stats.contracts
    assert all(e.contract_price and e.prediction_id for e in contracts)
    # Every user event is attributed to a prediction that was really served and published.
    published = {
        PredictionEvent.from_bytes(v).prediction_id
        for v in read_topic(settings, "predictions", want=stats.predictions_ok, timeout=60)
    }
    assert {e.prediction_id for e in simulated} <= published
