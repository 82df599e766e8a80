"""The prediction API: features from the online store, the model in a slot, events to Kafka.

Responses are built as plain dicts and sent with orjson (the declared response models
document them); ordinary prediction requests skip FastAPI's routing (:mod:`serving.hot_path`);
a request reads its model slot once; its events are encoded once the response is out and
publishing never waits for the broker; TreeSHAP runs only when ``?explain=true`` asks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
import orjson
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.background import BackgroundTask

from homeloop import heap
from homeloop.clock import event_clock
from homeloop.features import MODEL_FEATURES
from homeloop.online_reader import OnlineReader
from homeloop.redis_wire import WireConnection
from homeloop.registry import CHAMPION
from homeloop.settings import Settings
from serving.answers import Priced, bodies, events, uuid4_strings
from serving.explain import explain as explain_rows
from serving.follower import SLOTS, RegistryFollower
from serving.hot_path import HotPath, HotRoute
from serving.metrics import (
    FEATURE_READ_SECONDS,
    MODEL_INFO,
    MODEL_SECONDS,
    PREDICTED_PRICE,
    REQUEST_SECONDS,
    REQUESTS,
    observe_many,
)
from serving.model_slots import LoadedModel, ModelSlots, load_alias
from serving.predictor import FeatureBatch, Predictor
from serving.publisher import PredictionPublisher
from serving.schemas import (
    BatchPublic,
    BatchRequest,
    ModelsPublic,
    PredictionPublic,
    PredictionRequest,
    Problem,
    Readiness,
    ReloadPublic,
)

logger = logging.getLogger(__name__)

_COLUMN = {name: i for i, name in enumerate(MODEL_FEATURES)}
PREDICT, BATCH = "/v1/predictions", "/v1/predictions/batch"


class ServingState:
    """Everything a request needs, created once per process in the lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = event_clock(settings)  # a simulation's predictions share its time line
        self.slots = ModelSlots()
        self.publisher = PredictionPublisher(settings)
        self.redis = aioredis.from_url(
            settings.require().redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        # The hot path's reads go over a lean connection of their own (homeloop.redis_wire).
        self.wire = WireConnection(settings.require().redis_url, timeout_s=1.0)
        self.predictor = Predictor(OnlineReader(self.redis, settings.feast_project, self.wire))
        self.load_errors: dict[str, str] = {}
        self._load_lock = asyncio.Lock()

    async def reload(self, slot: str) -> tuple[LoadedModel, LoadedModel | None]:
        """Load the version the alias ``slot`` points to, check it, swap it in.

        Raises when the version cannot be loaded or fails the golden set: the old record
        keeps serving."""
        async with self._load_lock:
            try:
                model = await asyncio.to_thread(load_alias, self.settings, slot)
            except Exception as exc:
                self.load_errors[slot] = f"{type(exc).__name__}: {exc}"
                raise
            previous = self.slots.put(slot, model)
            self.load_errors.pop(slot, None)
            if previous is not None:
                MODEL_INFO.labels(slot, previous.name, previous.version).set(0)
            MODEL_INFO.labels(slot=slot, model=model.name, version=model.version).set(1)
            heap.settle(heap.API_YOUNG)
            logger.info("slot %s: v%s (was %s)", slot, model.version, previous and previous.version)
            return model, previous

    def loaded_version(self, slot: str) -> str | None:
        model = self.slots.get(slot)
        return model.version if model else None

    async def load_slots(self) -> None:
        """Load every slot's alias once, before the process takes traffic: with several
        workers behind one port, a worker that answered before loading would send 503s
        while its siblings serve."""
        from mlflow.exceptions import MlflowException

        for slot in SLOTS:
            with suppress(MlflowException, RuntimeError):
                await self.reload(slot)

    async def wait_for_champion(self, every_s: float = 2.0) -> None:
        """Until a champion exists (a fresh deployment may start first), keep looking."""
        from mlflow.exceptions import MlflowException

        while self.slots.get(CHAMPION) is None:
            await asyncio.sleep(every_s)
            with suppress(MlflowException, RuntimeError):
                await self.reload(CHAMPION)

    async def ping_redis(self) -> bool:
        return bool(await self.redis.ping())  # type: ignore[misc]

    def respond(
        self,
        model: LoadedModel,
        requests: list[PredictionRequest],
        batch: FeatureBatch,
        explain: bool,
        started: float,
    ) -> tuple[list[dict[str, Any] | None], Priced | None]:
        """The response body of every request without an error, in order (None for errors),
        and the rows priced, for :meth:`publish` once the response is out."""
        ok = [i for i in range(len(requests)) if i not in batch.errors]
        out: list[dict[str, Any] | None] = [None] * len(requests)
        if not ok:
            return out, None
        t0 = time.perf_counter()
        matrix, stamps = batch.matrix, batch.updated_at_us
        if len(ok) < len(requests):  # leave out the rows with errors
            matrix, stamps = matrix[ok], stamps[ok]
        x = np.take(matrix, _columns(model.features), axis=1)  # C order, as LightGBM reads it
        prices = np.rint(model.predict(x)).astype(np.int64).tolist()
        explanations = explain_rows(model.model, x) if explain else None
        MODEL_SECONDS.observe(time.perf_counter() - t0)
        priced = Priced(
            model=model,
            requests=[requests[i] for i in ok],
            rows=x,
            prices=prices,
            updated_at_us=stamps,
            degraded=[batch.degraded[i] for i in ok],
            latency_ms=round((time.perf_counter() - started) * 1000.0, 3),
            prediction_ids=uuid4_strings(len(ok)),
            at=self.clock(),
        )
        for k, (i, body) in enumerate(zip(ok, bodies(priced), strict=True)):
            if explanations is not None:
                body["explanation"] = [c.model_dump() for c in explanations[k]]
            out[i] = body
        return out, priced

    async def publish(self, priced: Priced | None) -> None:
        """Hand the answered rows' events to the publisher, after their response went out:
        encoding a batch's 100 events took ~0.5 ms the client need not wait for. (``async``
        so Starlette runs it in the loop as the response's background, not in a thread.)"""
        if priced is not None:
            self.publisher.publish_records(events(priced))
            observe_many(PREDICTED_PRICE, priced.prices)


@lru_cache(maxsize=8)
def _columns(features: tuple[str, ...]) -> np.ndarray:
    """Where a model's features are in :data:`MODEL_FEATURES` order."""
    return np.array([_COLUMN[name] for name in features])


def _json(body: object, then: BackgroundTask | None = None) -> Response:
    """orjson straight to bytes: the body is built from plain values already, so a second
    validation pass through the response model would only cost time. ``then`` runs once
    the response is sent."""
    return Response(orjson.dumps(body), media_type="application/json", background=then)


ExplainQuery = Annotated[
    bool, Query(description="Add the top TreeSHAP contributions, in 만원 (slower)")
]
_bearer = HTTPBearer(auto_error=False)


def create_app(settings: Settings) -> FastAPI:
    # The routes use the state directly (nothing connects before the lifespan starts it):
    # as a dependency it cost ~25 µs of FastAPI's dependency solving per request.
    state = ServingState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.serving = state
        await state.publisher.start()
        await state.load_slots()
        heap.settle(heap.API_YOUNG)
        follower = RegistryFollower(settings, state.reload, state.loaded_version)
        tasks = [
            asyncio.create_task(state.wait_for_champion(), name="champion-watcher"),
            asyncio.create_task(follower.run(), name="registry-follower"),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        await state.publisher.stop()
        await state.redis.aclose()
        await state.wire.close()

    app = FastAPI(
        title="homeloop prediction API",
        version="1",
        description="Fair sale prices of apartments in 만원, from the online store's features.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def count_invalid(request: Request, exc: RequestValidationError) -> Response:
        REQUESTS.labels(request.url.path, "422", "none").inc()
        return await request_validation_exception_handler(request, exc)

    async def admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        expected = settings.admin_token.get_secret_value().encode()
        given = credentials.credentials.encode() if credentials else b""
        if not credentials or not secrets.compare_digest(given, expected):
            raise HTTPException(
                401, "a valid admin bearer token is required", {"WWW-Authenticate": "Bearer"}
            )

    def champion_or_503(route: str) -> LoadedModel:
        model = state.slots.get(CHAMPION)  # read the slot once per request
        if model is None:
            REQUESTS.labels(route, "503", "none").inc()
            reason = state.load_errors.get(CHAMPION, "no champion registered yet")
            raise HTTPException(503, f"no model loaded: {reason}")
        return model

    async def answer(body: PredictionRequest, explain: bool) -> Response:
        started = time.perf_counter()
        model = champion_or_503(PREDICT)
        batch = await state.predictor.features([body])
        FEATURE_READ_SECONDS.observe(time.perf_counter() - started)
        if 0 in batch.errors:
            status, detail = batch.errors[0]
            REQUESTS.labels(PREDICT, str(status), CHAMPION).inc()
            raise HTTPException(status, detail)
        (out,), priced = state.respond(model, [body], batch, explain, started)
        REQUESTS.labels(PREDICT, "200", CHAMPION).inc()
        REQUEST_SECONDS.labels(PREDICT).observe(time.perf_counter() - started)
        return _json(out, BackgroundTask(state.publish, priced))

    async def answer_batch(body: BatchRequest, explain: bool) -> Response:
        started = time.perf_counter()
        limit = settings.serving_batch_limit
        if len(body.items) > limit:
            REQUESTS.labels(BATCH, "413", "none").inc()
            raise HTTPException(
                413, f"{len(body.items)} listings in one batch; the limit is {limit}"
            )
        model = champion_or_503(BATCH)
        batch = await state.predictor.features(body.items)
        FEATURE_READ_SECONDS.observe(time.perf_counter() - started)
        answers, priced = state.respond(model, body.items, batch, explain, started)
        errors = [
            {"index": i, "listing_id": body.items[i].listing_id, "status": s, "detail": d}
            for i, (s, d) in sorted(batch.errors.items())
        ]
        REQUESTS.labels(BATCH, "200", CHAMPION).inc()
        REQUEST_SECONDS.labels(BATCH).observe(time.perf_counter() - started)
        return _json(
            {"predictions": [a for a in answers if a is not None], "errors": errors},
            BackgroundTask(state.publish, priced),
        )

    # Ordinary requests to these two skip FastAPI's routing (serving.hot_path); the routes
    # below answer the rest and document both.
    app.add_middleware(
        HotPath,
        routes={
            PREDICT: HotRoute(PredictionRequest, answer),
            BATCH: HotRoute(BatchRequest, answer_batch),
        },
    )

    @app.post(
        PREDICT,
        response_model=PredictionPublic,
        responses={
            404: {"model": Problem, "description": "The store does not know the listing id"},
            503: {"model": Problem, "description": "No model loaded, or store down (by id)"},
        },
        tags=["predictions"],
    )
    async def predict(body: PredictionRequest, explain: ExplainQuery = False) -> Response:
        """Predict one listing's price: by id (its features from the online store) or by its
        attributes (a listing the store does not know yet)."""
        return await answer(body, explain)

    @app.post(
        BATCH,
        response_model=BatchPublic,
        responses={
            413: {"model": Problem, "description": "More listings than the batch limit"},
            503: {"model": Problem, "description": "No model loaded"},
        },
        tags=["predictions"],
    )
    async def predict_batch(body: BatchRequest, explain: ExplainQuery = False) -> Response:
        """Predict up to the batch limit of listings with one feature round trip; a listing
        that cannot be answered is listed under ``errors`` and the rest are answered."""
        return await answer_batch(body, explain)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness}},
        tags=["operations"],
    )
    async def readyz() -> JSONResponse:
        """Ready: a model is loaded and the online store and broker are reachable."""
        checks: dict[str, Literal["ok", "failing"]] = {}
        details: dict[str, str] = {}
        model = state.slots.get(CHAMPION)
        checks["model"] = "ok" if model else "failing"
        details["model"] = (
            f"v{model.version}" if model else state.load_errors.get(CHAMPION, "loading")
        )
        try:
            await asyncio.wait_for(state.ping_redis(), 1.0)
            checks["online_store"] = "ok"
        except Exception as exc:
            checks["online_store"] = "failing"
            details["online_store"] = f"{type(exc).__name__}: {exc}"
        checks["broker"] = "ok" if state.publisher.connected else "failing"
        ready = all(v == "ok" for v in checks.values())
        payload = Readiness(ready=ready, checks=checks, details=details)
        return JSONResponse(payload.model_dump(), status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several workers: sum their files
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelsPublic, tags=["models"])
    async def models() -> ModelsPublic:
        """The loaded model versions, their slots and the traffic split."""
        traffic = state.slots.traffic()
        return ModelsPublic.model_validate(
            {
                "models": [
                    {
                        "slot": slot,
                        "model_name": m.name,
                        "version": m.version,
                        "flavor": m.model.flavor,
                        "compiled": m.model.compiled is not None,
                        "target": m.model.target.kind,
                        "features": list(m.features),
                        "traffic_share": traffic[slot],
                        "loaded_at": m.loaded_at,
                    }
                    for slot, m in state.slots.items()
                ],
                "traffic": traffic,
            }
        )

    @app.post(
        "/v1/admin/models/{slot}/reload",
        response_model=ReloadPublic,
        responses={
            401: {"model": Problem, "description": "Missing or wrong admin token"},
            404: {"model": Problem, "description": "No version holds that alias"},
            409: {"model": Problem, "description": "The version failed to load or check"},
        },
        dependencies=[Depends(admin)],
        tags=["admin"],
    )
    async def reload(slot: Literal["champion", "challenger"]) -> ReloadPublic:
        """Load the version the alias points to now; on failure the old model keeps serving."""
        from mlflow.exceptions import MlflowException

        try:
            model, previous = await state.reload(slot)
        except MlflowException as exc:
            raise HTTPException(404, f"no version holds the alias {slot!r}: {exc}") from exc
        except Exception as exc:
            kept = state.loaded_version(slot)
            raise HTTPException(
                409, f"load failed, still serving {kept and 'v' + kept}: {exc}"
            ) from exc
        return ReloadPublic(
            slot=slot, version=model.version, previous_version=previous and previous.version
        )

    return app


def app_from_env() -> FastAPI:
    """The factory each server worker calls (``homeloop serve`` with several workers)."""
    from homeloop.settings import load_settings

    return create_app(load_settings())
