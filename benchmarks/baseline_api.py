"""The serving benchmark's baseline: the prediction endpoint built the obvious way.

A FastAPI app under uvicorn with its defaults (one worker, ``loop="auto"`` and
``http="auto"``, which pick uvloop and httptools when installed, access log on, the
standard library's ``json``), an ``async def`` endpoint calling Feast's Python SDK for the
features and the booster's ``predict`` (XGBoost: on a ``DMatrix``):

- ``POST /v1/predictions`` ``{"listing_id": "..."}``: ``FeatureStore.get_online_features``
  for the listing's features of the feature service ``price_model_v1``. The service joins
  the listing's views on ``listing_id`` and the market views on ``complex_id``,
  ``dong_id`` and ``region_code``, which only the listing view knows (Feast refuses the
  service with ``listing_id`` alone: "Missing join key values"), so the endpoint first
  reads those three keys for the listing (a first ``get_online_features``), then the
  service's features with all four keys; the market figures are resolved complex → dong
  → region by ``homeloop.price_levels.resolve`` as everywhere else, then one
  ``booster.predict(xgb.DMatrix(...))`` (a LightGBM champion: ``PriceModel.predict``)
  gives the model's output, turned into a price by the model's target spec. Returns
  ``{"listing_id", "price", "model_version"}``. It publishes nothing to Kafka.
- ``GET /healthz``: ``{"status": "ok"}``.

With ``async def`` the blocking calls run on the event loop, one request at a time. That
is the stronger of the two obvious ways here, and the one that reproduces the baseline's
quoted figures (~650 requests/s, p50 ~45 ms at 32 connections on these 2 cores);
``--threadpool`` declares the endpoint ``def`` instead, as FastAPI's documentation
advises for blocking calls: its thread pool then runs up to 40 requests in threads that
contend for the GIL, which measured ~370-540 requests/s with p99 ~320-390 ms.

Run by ``benchmarks/serving.py`` as its own process:

    .venv/bin/python benchmarks/baseline_api.py --port 8100   # settings from HOMELOOP_*
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI, HTTPException  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from homeloop.features import ENGAGEMENT_FEATURES, LISTING_FEATURES  # noqa: E402
from homeloop.featurestore import (  # noqa: E402
    ENGAGEMENT_VIEW,
    FEATURE_SERVICE,
    LISTING_VIEW,
    MARKET_VIEWS,
    feature_store,
)
from homeloop.model_store import load_alias  # noqa: E402
from homeloop.price_levels import LEVEL_FEATURES, resolve  # noqa: E402
from homeloop.settings import Settings  # noqa: E402
from homeloop.units import to_manwon  # noqa: E402

KEYS = ("complex_id", "dong_id", "region_code")


class PredictionRequest(BaseModel):
    listing_id: str


def create_app(settings: Settings, threadpool: bool = False) -> FastAPI:
    import xgboost as xgb

    store = feature_store(settings)
    service = store.get_feature_service(FEATURE_SERVICE)
    key_refs = [f"{LISTING_VIEW}:{key}" for key in KEYS]
    registered = load_alias(settings)
    model = registered.model
    columns = list(model.features)

    app = FastAPI(title="baseline prediction API")

    def features(listing_id: str) -> dict[str, float] | None:
        keys = store.get_online_features(
            features=key_refs, entity_rows=[{"listing_id": listing_id}]
        ).to_dict()
        if keys["complex_id"][0] is None:
            return None
        entity = {"listing_id": listing_id, **{key: keys[key][0] for key in KEYS}}
        values = store.get_online_features(
            features=service, entity_rows=[entity], full_feature_names=True
        ).to_dict()

        def get(view: str, name: str) -> float:
            value = values[f"{view}__{name}"][0]
            return math.nan if value is None else float(value)

        row = {name: get(LISTING_VIEW, name) for name in LISTING_FEATURES}
        row |= {name: get(ENGAGEMENT_VIEW, name) for name in ENGAGEMENT_FEATURES}
        levels = [
            {name: np.array([get(view, name)]) for name in LEVEL_FEATURES} for view in MARKET_VIEWS
        ]
        resolved, _ = resolve(levels)
        row |= {name: float(column[0]) for name, column in resolved.items()}
        return row

    def predict(body: PredictionRequest) -> dict[str, Any]:
        row = features(body.listing_id)
        if row is None:
            raise HTTPException(404, f"listing {body.listing_id!r} is not in the online store")
        matrix = np.array([[row[name] for name in columns]], dtype=np.float64)
        if model.flavor == "xgboost":
            raw = model.booster.predict(xgb.DMatrix(matrix, feature_names=columns))
            price = float(model.target.from_target(np.asarray(raw), model.base(matrix))[0])
        else:
            price = float(model.predict(matrix)[0])
        return {
            "listing_id": body.listing_id,
            "price": to_manwon(price),
            "model_version": registered.version,
        }

    if threadpool:  # a def endpoint: FastAPI runs it in its thread pool
        app.post("/v1/predictions")(predict)
    else:  # the blocking calls on the event loop: no thread-pool hand-off

        async def predict_on_loop(body: PredictionRequest) -> dict[str, Any]:
            return predict(body)

        app.post("/v1/predictions")(predict_on_loop)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--threadpool",
        action="store_true",
        help="declare the endpoint def (run in the thread pool) instead of async def",
    )
    args = parser.parse_args()
    # HOMELOOP_* from the environment; the model is loaded before the server listens
    app = create_app(Settings(), threadpool=args.threadpool)
    uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
