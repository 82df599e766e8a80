"""The coalescing HTTP protocol, on a real uvicorn server over real loopback sockets: each
response leaves in one write, keep-alive and pipelined requests get whole answers in
order, and a response before ``Connection: close`` arrives whole before the close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from homeloop.stack.ports import free_port
from serving.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport


class CountingTransport:
    """A real transport, with its ``write`` calls counted (what reaches the socket)."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def counted(protocol: type[HttpToolsProtocol], writes: list[bytes]) -> type[HttpToolsProtocol]:
    class Counted(protocol):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(CountingTransport(transport, writes))  # type: ignore[arg-type]

    return Counted


async def echo(request: Request) -> Response:
    return PlainTextResponse(f"hello {request.path_params['name']}")


async def chunks(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two,", b"three"):
            await asyncio.sleep(0.01)
            yield part

    return StreamingResponse(body(), media_type="text/plain")


APP = Starlette(routes=[Route("/hello/{name}", echo), Route("/chunks", chunks)])


def serve(protocol: type[HttpToolsProtocol], check: Callable[[int], Awaitable[None]]) -> None:
    """Run ``check(port)`` against a uvicorn server with ``protocol``, on uvloop as served."""

    async def main() -> None:
        port = free_port()
        config = uvicorn.Config(
            APP, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_level="error"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            await check(port)
        finally:
            server.should_exit = True
            await task

    uvloop.run(main())


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response's head and body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().lower().split("\r\n")
    length = next((int(h.split(":")[1]) for h in lines if h.startswith("content-length:")), None)
    if length is not None:
        return head, await reader.readexactly(length)
    body = b""
    while (size := int((await reader.readline()).strip(), 16)) > 0:
        body += await reader.readexactly(size)
        await reader.readline()
    await reader.readline()
    return head, body


def get(path: str, close: bool = False) -> bytes:
    connection = b"close" if close else b"keep-alive"
    return b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: %s\r\n\r\n" % (path.encode(), connection)


def test_each_response_leaves_in_one_write() -> None:
    writes: list[bytes] = []

    async def check(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for name in ("a", "b", "c"):
            writer.write(get(f"/hello/{name}"))
            head, body = await read_response(reader)
            assert head.startswith(b"HTTP/1.1 200") and body == f"hello {name}".encode()
        writer.close()

    serve(counted(CoalescingHttpToolsProtocol, writes), check)
    assert len(writes) == 3, writes
    assert all(
        w.startswith(b"HTTP/1.1 200") and w.endswith(b"hello " + n)
        for w, n in zip(writes, (b"a", b"b", b"c"), strict=True)
    )


def test_plain_uvicorn_writes_head_and_body_apart() -> None:
    """What the protocol is for: without it, every response is two writes."""
    writes: list[bytes] = []

    async def check(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get("/hello/a"))
        await read_response(reader)
        writer.close()

    serve(counted(HttpToolsProtocol, writes), check)
    assert len(writes) == 2 and writes[1] == b"hello a"


def test_pipelined_requests_get_whole_answers_in_order() -> None:
    async def check(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        names = [f"n{i}" for i in range(20)]
        writer.write(b"".join(get(f"/hello/{n}") for n in names))
        for name in names:
            _, body = await read_response(reader)
            assert body == f"hello {name}".encode()
        writer.close()

    serve(CoalescingHttpToolsProtocol, check)


def test_a_response_before_close_arrives_whole_then_the_connection_ends() -> None:
    async def check(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get("/hello/bye", close=True))
        head, body = await read_response(reader)
        assert b"connection: close" in head.lower() and body == b"hello bye"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server

    serve(CoalescingHttpToolsProtocol, check)


def test_a_streamed_body_arrives_in_its_parts_and_whole() -> None:
    writes: list[bytes] = []

    async def check(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get("/chunks"))
        _, body = await read_response(reader)
        assert body == b"one,two,three"
        writer.close()

    serve(counted(CoalescingHttpToolsProtocol, writes), check)
    # the parts are awaited apart, so each leaves in its own turn, not held to the end
    assert len(writes) >= 3


def test_close_sends_what_was_held_and_later_writes_are_dropped_quietly() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        received = asyncio.get_running_loop().create_future()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.set_result(await reader.read())
            writer.close()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        coalescing = CoalescingTransport(transport, loop)  # type: ignore[arg-type]
        coalescing.write(b"one ")
        coalescing.write(bytearray(b"two"))
        coalescing.close()  # flushes first
        assert await asyncio.wait_for(received, 5) == b"one two"
        coalescing.write(b"after close")
        await asyncio.sleep(0.01)  # its flush finds the transport closing and sends nothing
        server.close()
        await server.wait_closed()

    uvloop.run(main())
