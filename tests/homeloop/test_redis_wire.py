"""serving's lean Redis connection against the real Redis: replies in order under
pipelining, Redis errors as redis-py's, and each way the server can fail (refused, gone,
silent) a clear error, with the next call connecting afresh."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvloop
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from homeloop.redis_wire import WireConnection
from homeloop.settings import Settings
from homeloop.stack.ports import free_port

pytestmark = pytest.mark.integration


def run(body: Callable[[], Awaitable[Any]], loop: str = "asyncio") -> Any:
    if loop == "uvloop":  # the server's loop, whose transports differ in type
        return uvloop.run(body())  # type: ignore[arg-type]
    return asyncio.run(body())  # type: ignore[arg-type]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_concurrent_calls_get_their_own_replies_in_order(settings: Settings, loop: str) -> None:
    url = settings.require().redis_url
    prefix = f"wire-test:{settings.feast_project}:"

    async def body() -> None:
        wire = WireConnection(url)
        try:
            await asyncio.gather(*(wire.call("SET", f"{prefix}{i}", i) for i in range(200)))
            got = await asyncio.gather(*(wire.call("GET", f"{prefix}{i}") for i in range(200)))
            assert got == [str(i).encode() for i in range(200)]
            assert await wire.call("HMGET", f"{prefix}none", "a", "b") == [None, None]
            with pytest.raises(ResponseError, match="unknown command"):
                await wire.call("NO-SUCH-COMMAND")
            assert await wire.call("PING") == b"PONG"  # the socket goes on after an error
        finally:
            await wire.close()

    run(body, loop)


def test_a_refused_connection_is_a_connection_error() -> None:
    async def body() -> None:
        wire = WireConnection(f"redis://127.0.0.1:{free_port()}/0")
        with pytest.raises(ConnectionError, match="cannot connect"):
            await wire.call("PING")

    run(body)


def test_a_silent_server_times_out_and_a_closing_one_is_a_connection_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts and never answers

    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # takes the command, then hangs up
        writer.close()

    async def body() -> None:
        for handler, error, message in (
            (silent, TimeoutError, "no reply"),
            (closing, ConnectionError, "connection to Redis lost"),
        ):
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            wire = WireConnection(f"redis://127.0.0.1:{port}/0", timeout_s=0.3)
            try:
                with pytest.raises(error, match=message):
                    await wire.call("PING")
            finally:
                await wire.close()
                server.close()

    run(body)


def test_a_killed_connection_is_replaced_by_the_next_call(settings: Settings) -> None:
    url = settings.require().redis_url

    async def body() -> None:
        wire, admin = WireConnection(url), aioredis.from_url(url)
        try:
            client_id = await wire.call("CLIENT", "ID")
            await admin.execute_command("CLIENT", "KILL", "ID", client_id)
            await asyncio.sleep(0.1)  # the hang-up reaches the socket
            assert await wire.call("PING") == b"PONG"
            assert await wire.call("CLIENT", "ID") != client_id  # a new socket
        finally:
            await wire.close()
            await admin.aclose()

    run(body)
