"""The prediction API in-process on the real services: Redis (online store), the broker,
PostgreSQL and MLflow. Every answer the issue names, and every bad input, as a test."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from batch.train import run_training
from homeloop.events import PredictionEvent
from homeloop.features import MODEL_FEATURES
from homeloop.model_store import alias_version
from homeloop.registry import CHALLENGER, FEATURES_TAG, encode_features
from homeloop.settings import Settings
from homeloop.tracking import mlflow_client
from serving.app import create_app
from serving.predictor import NO_LEVEL, STORE_DOWN
from tests.factories import synthetic_deals
from tests.topics import read_topic

pytestmark = pytest.mark.integration
TOKEN = {"Authorization": "Bearer changethis"}
ATTRIBUTES = {"complex_id": "C1", "region_code": "41135", "dong": "정자동", "area_sqm": 84.9,
              "floor": 9, "build_year": 2004, "lat": 37.36, "lon": 127.11}  # fmt: skip


@asynccontextmanager
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            for _ in range(100):  # the champion loads in the background
                if (await http.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            yield http


def run(settings: Settings, scenario) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        async with client(settings) as http:
            await scenario(http)

    asyncio.run(go())


def test_prediction_by_id_with_interval_freshness_and_its_event(served: Settings) -> None:
    answers: list[dict] = []

    async def scenario(http: httpx.AsyncClient) -> None:
        r = await http.post("/v1/predictions", json={"listing_id": "A-1", "user_id": "U1"})
        assert r.status_code == 200, r.text
        answers.append(r.json())

    run(served, scenario)
    body = answers[0]
    assert body["price"] > 10_000 and body["listing_id"] == "A-1"
    assert body["interval"]["low"] < body["price"] < body["interval"]["high"]
    assert (body["model_version"], body["variant"]) == ("1", "champion")
    assert body["features_updated_at"].startswith("2026-01-10T09:00")
    assert body["feature_age_s"] > 0 and body["degraded"] is False, body["degraded_reasons"]
    assert body["explanation"] is None if "explanation" in body else True
    events = [json.loads(v) for v in read_topic(served, "predictions", want=1, timeout=10)]
    mine = [e for e in events if e["prediction_id"] == body["prediction_id"]]
    assert len(mine) == 1 and mine[0]["user_id"] == "U1"
    PredictionEvent.model_validate(mine[0])  # the hand-encoded event is the contract
    assert mine[0]["predicted_price"] == body["price"]
    assert set(mine[0]["features"]) == set(MODEL_FEATURES)


def test_explanations_name_the_features_in_plain_words(served: Settings) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        r = await http.post("/v1/predictions?explain=true", json={"listing_id": "A-2"})
        assert r.status_code == 200, r.text
        top = r.json()["explanation"]
        assert len(top) == 5
        sizes = [abs(c["contribution"]) for c in top]
        assert sizes == sorted(sizes, reverse=True)
        area = next(c for c in top if c["feature"] == "area_sqm")  # area drives price here
        assert "floor area" in area["description"] and area["value"] == 100.0

    run(served, scenario)


def test_prediction_by_attributes_and_degraded_when_the_market_is_unknown(
    served: Settings,
) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        known = await http.post("/v1/predictions", json={"listing": ATTRIBUTES})
        assert known.status_code == 200, known.text
        assert known.json()["degraded"] is False and known.json()["listing_id"] is None
        assert known.json()["features_updated_at"] is None
        elsewhere = {**ATTRIBUTES, "complex_id": "NEW", "region_code": "11110", "dong": "청운동"}
        unknown = await http.post("/v1/predictions", json={"listing": elsewhere})
        assert unknown.status_code == 200, unknown.text
        assert unknown.json()["degraded"] is True
        assert unknown.json()["degraded_reasons"] == [NO_LEVEL]

    run(served, scenario)


def test_batch_answers_what_it_can_and_refuses_over_the_limit(served: Settings) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        items = [{"listing_id": "A-0"}, {"listing_id": "GONE"}, {"listing": ATTRIBUTES}]
        r = await http.post("/v1/predictions/batch", json={"items": items})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [p["listing_id"] for p in body["predictions"]] == ["A-0", None]
        assert body["errors"] == [
            {"index": 1, "listing_id": "GONE", "status": 404,
             "detail": "listing 'GONE' is not in the online store"}
        ]  # fmt: skip
        over = await http.post("/v1/predictions/batch", json={"items": items + items[:1]})
        assert over.status_code == 413 and "limit is 3" in over.json()["detail"]
        empty = await http.post("/v1/predictions/batch", json={"items": []})
        assert empty.status_code == 422

    run(served, scenario)


def test_bad_requests_get_4xx_that_say_what_is_wrong(served: Settings) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        unknown = await http.post("/v1/predictions", json={"listing_id": "NOPE-404"})
        assert unknown.status_code == 404 and "NOPE-404" in unknown.json()["detail"]
        absurd = await http.post(
            "/v1/predictions", json={"listing": {**ATTRIBUTES, "area_sqm": 5_000}}
        )
        assert absurd.status_code == 422
        assert absurd.json()["detail"][0]["loc"] == ["body", "listing", "area_sqm"]
        region = await http.post(
            "/v1/predictions", json={"listing": {**ATTRIBUTES, "region_code": "4113"}}
        )
        assert region.json()["detail"][0]["loc"][-1] == "region_code"
        broken = await http.post(
            "/v1/predictions", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 422
        extra = await http.post("/v1/predictions", json={"listing_id": "A-0", "price": 1})
        assert extra.status_code == 422 and extra.json()["detail"][0]["loc"][-1] == "price"

    run(served, scenario)


def test_admin_reload_needs_the_token_and_a_bad_version_never_takes_a_slot(
    served: Settings,
) -> None:
    client_ = mlflow_client(served)
    name = served.model_name
    champion = client_.get_model_version(name, "1")
    # A version whose columns serving cannot build: it must fail the golden set.
    bad = client_.create_model_version(
        name, champion.source, tags={**champion.tags, FEATURES_TAG: encode_features(
            (*MODEL_FEATURES, "mystery"))},
    )  # fmt: skip
    client_.set_registered_model_alias(name, CHALLENGER, bad.version)

    async def scenario(http: httpx.AsyncClient) -> None:
        path = "/v1/admin/models/champion/reload"
        assert (await http.post(path)).status_code == 401
        wrong = await http.post(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        ok = await http.post(path, headers=TOKEN)
        assert ok.status_code == 200 and ok.json()["version"] == "1"
        failed = await http.post("/v1/admin/models/challenger/reload", headers=TOKEN)
        assert failed.status_code == 409 and "golden" in failed.json()["detail"]
        slots = (await http.get("/v1/models")).json()
        assert [m["slot"] for m in slots["models"]] == ["champion"]
        # LightGBM trees are compiled on load (settings default); XGBoost has no such step
        assert [m["compiled"] for m in slots["models"]] == [
            m["flavor"] == "lightgbm" for m in slots["models"]
        ]
        assert slots["traffic"] == {"champion": 1.0}
        predicted = await http.post("/v1/predictions", json={"listing_id": "A-0"})
        assert predicted.status_code == 200  # the champion kept serving

    try:
        run(served, scenario)
    finally:
        client_.delete_registered_model_alias(name, CHALLENGER)
    assert alias_version(served, CHALLENGER) is None


def test_no_model_loaded_is_a_503_with_the_reason(served: Settings, tmp_path: Path) -> None:
    empty = served.model_copy(update={"data_dir": tmp_path, "mlflow_tracking_uri": None})

    async def scenario(http: httpx.AsyncClient) -> None:
        r = await http.post("/v1/predictions", json={"listing_id": "A-0"})
        assert r.status_code == 503 and "no model loaded" in r.json()["detail"], r.text
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["model"] == "failing"

    run(empty, scenario)


def test_with_the_online_store_down_attributes_still_get_answers(served: Settings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = served.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})

    async def scenario(http: httpx.AsyncClient) -> None:
        for _ in range(100):
            if (await http.get("/v1/models")).json()["models"]:
                break
            await asyncio.sleep(0.1)
        by_attrs = await http.post("/v1/predictions", json={"listing": ATTRIBUTES})
        assert by_attrs.status_code == 200, by_attrs.text
        assert by_attrs.json()["degraded"] is True
        assert by_attrs.json()["degraded_reasons"] == [STORE_DOWN]
        by_id = await http.post("/v1/predictions", json={"listing_id": "A-0"})
        assert by_id.status_code == 503 and "attributes" in by_id.json()["detail"]
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"model": "ok", "online_store": "failing", "broker": "ok"}

    run(down, scenario)


def test_replicas_follow_model_events_into_the_challenger_slot(served: Settings) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        await asyncio.sleep(2)  # the follower's consumer starts at the latest offset
        outcome = await asyncio.to_thread(run_training, served, synthetic_deals(3_000))
        assert outcome.alias == CHALLENGER  # published `staged` on model-events
        slots: dict = {}
        for _ in range(150):
            slots = (await http.get("/v1/models")).json()
            if len(slots["models"]) == 2:
                break
            await asyncio.sleep(0.1)
        versions = {m["slot"]: m["version"] for m in slots["models"]}
        assert versions == {"champion": "1", "challenger": outcome.version}
        assert slots["traffic"] == {"champion": 1.0, "challenger": 0.0}
        served_by = await http.post("/v1/predictions", json={"listing_id": "A-0"})
        assert served_by.json()["model_version"] == "1"  # the challenger takes no traffic yet

    run(served, scenario)


def test_concurrent_requests_share_a_read_and_each_gets_its_own_listing(served: Settings) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        ids = ["A-0", "A-1", "NOPE", "A-2"] * 5
        answers = await asyncio.gather(
            *(http.post("/v1/predictions", json={"listing_id": i}) for i in ids)
        )
        prices: dict[str, set[int]] = {}
        for listing_id, r in zip(ids, answers, strict=True):
            if listing_id == "NOPE":
                assert r.status_code == 404
                continue
            assert r.status_code == 200 and r.json()["listing_id"] == listing_id
            prices.setdefault(listing_id, set()).add(r.json()["price"])
        # One price per listing, and the 100 ㎡ flat dearer than the 60 ㎡ one: no row mixed up.
        assert all(len(p) == 1 for p in prices.values())
        assert min(prices["A-0"]) < min(prices["A-2"])

    run(served, scenario)
