"""The prediction API: features from the online store, XGBoost in a model slot, events to Kafka."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal
from uuid import uuid4

import numpy as np
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from homeloop.events import PredictionEvent
from homeloop.features import feature_vector
from homeloop.registry import CHAMPION
from homeloop.settings import Settings
from homeloop.units import to_manwon
from serving.feature_reader import FeatureReader
from serving.metrics import (
    FEATURE_READ_SECONDS,
    MODEL_INFO,
    MODEL_SECONDS,
    PREDICTED_PRICE,
    REQUEST_SECONDS,
    REQUESTS,
)
from serving.model_slots import LoadedModel, ModelSlots, load_alias
from serving.publisher import PredictionPublisher
from serving.schemas import (
    ModelSlotPublic,
    ModelsPublic,
    PredictionPublic,
    PredictionRequest,
    Problem,
    Readiness,
)

logger = logging.getLogger(__name__)


class ServingState:
    """Everything a request needs, created once per process in the lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slots = ModelSlots()
        self.publisher = PredictionPublisher(settings)
        self.redis = aioredis.from_url(settings.require().redis_url)
        self.features = FeatureReader(settings, self.redis)
        self.load_error: str | None = None

    async def load_champion(self) -> None:
        """Load the champion off the event loop; a failure leaves the old model serving."""
        try:
            model = await asyncio.to_thread(load_alias, self.settings, CHAMPION)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            logger.error("champion load failed: %s", self.load_error)
            return
        self.slots.put(CHAMPION, model)
        self.load_error = None
        MODEL_INFO.labels(slot=CHAMPION, model=model.name, version=model.version).set(1)

    async def ping_redis(self) -> bool:
        return bool(await self.redis.ping())  # type: ignore[misc]

    async def wait_for_champion(self, every_s: float = 2.0) -> None:
        """Until a champion is loaded, look for one; a fresh deployment may start first."""
        while self.slots.get(CHAMPION) is None:
            await asyncio.sleep(every_s)
            await self.load_champion()


def get_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


StateDep = Annotated[ServingState, Depends(get_state)]


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServingState(settings)
        app.state.serving = state
        await state.publisher.start()
        await state.load_champion()
        watcher = asyncio.create_task(state.wait_for_champion(), name="champion-watcher")
        yield
        watcher.cancel()
        await state.publisher.stop()
        await state.redis.aclose()

    app = FastAPI(
        title="homeloop prediction API",
        version="1",
        description="Fair sale prices of apartments in 만원, served from the online store.",
        lifespan=lifespan,
    )

    @app.post(
        "/v1/predictions",
        response_model=PredictionPublic,
        responses={404: {"model": Problem}, 503: {"model": Problem}},
        tags=["predictions"],
    )
    async def predict(body: PredictionRequest, state: StateDep) -> PredictionPublic:
        """Predict one listing's price from its features in the online store."""
        started = time.perf_counter()
        model: LoadedModel | None = state.slots.get(CHAMPION)  # read the slot once
        if model is None:
            REQUESTS.labels("/v1/predictions", "503", "none").inc()
            raise HTTPException(503, f"no model loaded: {state.load_error or 'loading'}")
        t0 = time.perf_counter()
        row = await state.features.read(body.listing_id)
        FEATURE_READ_SECONDS.observe(time.perf_counter() - t0)
        if row is None:
            REQUESTS.labels("/v1/predictions", "404", CHAMPION).inc()
            raise HTTPException(404, f"listing {body.listing_id!r} is not in the online store")
        t0 = time.perf_counter()
        vector = np.asarray([feature_vector(row, model.features)], dtype=np.float64)
        price = to_manwon(float(model.predict(vector)[0]))
        MODEL_SECONDS.observe(time.perf_counter() - t0)
        latency_ms = (time.perf_counter() - started) * 1000.0
        prediction_id = uuid4()
        state.publisher.publish(
            PredictionEvent(
                prediction_id=prediction_id,
                listing_id=body.listing_id,
                user_id=body.user_id,
                predicted_price=price,
                model_name=model.name,
                model_version=model.version,
                variant=CHAMPION,
                features=row,
                latency_ms=latency_ms,
            )
        )
        PREDICTED_PRICE.observe(price)
        REQUESTS.labels("/v1/predictions", "200", CHAMPION).inc()
        REQUEST_SECONDS.labels("/v1/predictions").observe(time.perf_counter() - started)
        return PredictionPublic(
            prediction_id=prediction_id,
            listing_id=body.listing_id,
            price=price,
            model_name=model.name,
            model_version=model.version,
            variant=CHAMPION,
            latency_ms=round(latency_ms, 3),
        )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, tags=["operations"])
    async def readyz(state: StateDep) -> JSONResponse:
        """Ready: a model is loaded and the online store and broker are reachable."""
        checks: dict[str, Literal["ok", "failing"]] = {}
        details: dict[str, str] = {}
        model = state.slots.get(CHAMPION)
        checks["model"] = "ok" if model else "failing"
        details["model"] = f"v{model.version}" if model else (state.load_error or "loading")
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
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelsPublic, tags=["models"])
    async def models(state: StateDep) -> ModelsPublic:
        """The loaded model versions, their slots and the traffic split."""
        return ModelsPublic(
            models=[
                ModelSlotPublic(
                    slot=slot,
                    model_name=m.name,
                    version=m.version,
                    features=list(m.features),
                    traffic_share=1.0 if slot == CHAMPION else 0.0,
                )
                for slot, m in state.slots.items()
            ]
        )

    return app
