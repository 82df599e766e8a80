"""The prediction routes' ordinary requests, answered beneath FastAPI's routing.

FastAPI's per-request machinery (its middleware layers, routing, dependency solving and
a body parsed by the standard library's ``json`` before pydantic validates it) cost more
CPU per prediction than the model does (in-process, ~60 µs against ~3 µs for a bare ASGI
handler), and every await of the route resumes that whole stack: the CPU per
prediction fell by a sixth without it (in-process, ~650 to ~540 µs). This middleware answers
a ``POST`` to a prediction route that has a JSON body and no query string itself: pydantic
parses the body straight from bytes and the route's own handler answers, so the answers
are the same. Anything else (a query string such as ``?explain=true``, another content
type, a body that does not validate) goes on to FastAPI, whose 422s, docs and OpenAPI
schema stay as they were.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class HotRoute:
    """A route's request model and the handler its FastAPI route calls too (it may raise
    ``HTTPException``)."""

    model: type[BaseModel]
    handler: Callable[[Any, bool], Awaitable[Response]]


class HotPath:
    """ASGI middleware: ordinary requests to the given paths skip FastAPI's routing."""

    def __init__(self, app: ASGIApp, routes: dict[str, HotRoute]) -> None:
        self._app = app
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or not _plain_json_post(scope):
            await self._app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        try:
            request = route.model.model_validate_json(body)
        except ValidationError:  # FastAPI says what is wrong, as it always has
            await self._app(scope, _replay(body, receive), send)
            return
        try:
            response = await route.handler(request, False)
        except HTTPException as exc:  # as FastAPI's own handler answers it
            response = JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)
        await response(scope, receive, send)


def _plain_json_post(scope: Scope) -> bool:
    if scope["method"] != "POST" or scope["query_string"]:
        return False
    for name, value in scope["headers"]:
        if name == b"content-type":  # parameters such as "; charset=utf-8" are fine
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives the body read already, then what the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
