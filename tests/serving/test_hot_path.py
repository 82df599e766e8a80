"""The hot path answers ordinary requests itself and leaves everything else to FastAPI, whose
answers (422s, errors) it must not change. A small app, in-process, no services."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Response

from serving.hot_path import HotPath, HotRoute
from serving.schemas import PredictionRequest


def app_and_calls(hot: bool) -> tuple[FastAPI, list[str]]:
    calls: list[str] = []
    app = FastAPI()

    async def handler(body: PredictionRequest, explain: bool) -> Response:
        if body.listing_id == "GONE":
            raise HTTPException(404, "listing 'GONE' is not in the online store")
        return Response(f'{{"id":"{body.listing_id}","explain":{str(explain).lower()}}}')

    async def traced(body: PredictionRequest, explain: bool) -> Response:
        calls.append("hot")
        return await handler(body, explain)

    if hot:
        app.add_middleware(HotPath, routes={"/p": HotRoute(PredictionRequest, traced)})

    @app.post("/p")
    async def route(body: PredictionRequest, explain: bool = False) -> Response:
        calls.append("fastapi")
        return await handler(body, explain)

    return app, calls


def post(app: FastAPI, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post("/p", **kwargs)

    return asyncio.run(go())


def both(**kwargs: Any) -> tuple[httpx.Response, httpx.Response, list[str]]:
    """The same request to the app with and without the hot path."""
    hot_app, calls = app_and_calls(hot=True)
    plain_app, _ = app_and_calls(hot=False)
    return post(hot_app, **kwargs), post(plain_app, **kwargs), calls


def test_an_ordinary_request_skips_fastapi_and_gets_the_same_answer() -> None:
    hot, plain, calls = both(json={"listing_id": "A-1"})
    assert calls == ["hot"]
    assert (hot.status_code, hot.content) == (plain.status_code, plain.content)


def test_a_json_content_type_with_parameters_takes_the_hot_path() -> None:
    body = b'{"listing_id": "A-1"}'
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        hot, plain, calls = both(content=body, headers={"content-type": content_type})
        assert calls == ["hot"], content_type
        assert (hot.status_code, hot.content) == (plain.status_code, plain.content)


def test_errors_are_answered_as_fastapi_answers_them() -> None:
    hot, plain, calls = both(json={"listing_id": "GONE"})
    assert calls == ["hot"]
    assert hot.status_code == plain.status_code == 404
    assert hot.json() == plain.json()


def test_anything_unusual_goes_to_fastapi() -> None:
    for kwargs in (
        {"json": {"listing_id": "A-1"}, "params": {"explain": "true"}},
        {"json": {"listing_id": "A-1", "price": 1}},  # fails validation: FastAPI's 422
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b'{"listing_id": "A-1"}', "headers": {"content-type": "text/plain"}},
    ):
        hot, plain, calls = both(**kwargs)
        assert "hot" not in calls, kwargs
        assert (hot.status_code, hot.json()) == (plain.status_code, plain.json()), kwargs
