"""A small HTTP/1.1 keep-alive load generator (wrk, wrk2 and oha are not installed here).

One process, one core: uvloop, ``asyncio.Protocol`` connections, requests encoded once up
front, and of each response only the status line and ``Content-Length`` (or the end of a
chunked body) are parsed. Two modes:

- **closed loop** (``--connections N``, no ``--rate``): every connection sends its next
  request when the previous response has arrived, like wrk. Latency is each request's own
  send-to-response time.
- **open loop** (``--rate R``): request *i* is due at ``start + i/R`` whatever the server
  does, like wrk2. Each request goes out on an idle connection (more are opened, up to
  ``--max-connections``, when all are busy; until one is free it waits in a queue). Its
  latency runs from the earlier of its due time and its actual send, so a slow response
  that delays later sends is charged to those requests too (no coordinated omission).
  The time from due to send is reported as ``send_lag_ms`` (timer jitter, queueing).

Requests answered during ``--warmup`` are not counted. Request bodies (``--bodies FILE``,
a JSON list: strings are sent as they are, anything else as compact JSON) are rotated per
request. Prints one JSON line: requests/s, latency percentiles, status counts, errors, the
generator's own CPU use. Loopback only: any other host is refused.

    .venv/bin/python benchmarks/loadgen.py --url http://127.0.0.1:8000/healthz -c 32 -d 10
    .venv/bin/python benchmarks/loadgen.py --url http://127.0.0.1:8000/v1/predictions \\
        --method POST --bodies bodies.json --rate 1000 -d 20

:func:`spawn` runs it as a child process and returns the parsed result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# An open-loop timer fires this early at most; such a request's latency then starts at its
# actual send (the earlier of the two), never at its later due time.
EARLY_S = 0.001


@dataclass
class Target:
    host: str
    port: int
    requests: list[bytes]

    @classmethod
    def build(
        cls, url: str, method: str, bodies: Sequence[bytes], headers: Sequence[str]
    ) -> Target:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        if host not in LOOPBACK:
            raise SystemExit(f"loopback only: {host!r}")
        port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        head += "".join(f"{h}\r\n" for h in headers)
        out = []
        for body in bodies or [b""]:
            lines = head
            if body or method not in ("GET", "HEAD"):
                lines += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            out.append((lines + "\r\n").encode() + body)
        return cls(host, port, out)


@dataclass
class Stats:
    measure_from: float = math.inf
    measure_until: float = math.inf
    in_window: int = 0  # responses received between measure_from and measure_until
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    status: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    opened: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, on_response: Callable[[Connection, int, float], None]) -> None:
        self.on_response = on_response
        self.on_lost: Callable[[Connection], None] = lambda _: None
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.need = -1  # bytes of the current response, once its head is parsed
        self.chunked = False
        self.status = 0
        self.busy = False
        self.sent_at = 0.0
        self.due = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.busy = True
        self.due = due
        self.sent_at = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        while True:
            if self.need < 0:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].lower()
                self.status = int(head[9:12])
                at = head.find(b"\r\ncontent-length:")
                if at >= 0:
                    stop = head.find(b"\r\n", at + 2)
                    self.need = end + 4 + int(head[at + 17 : stop if stop >= 0 else None])
                    self.chunked = False
                else:
                    self.chunked = b"transfer-encoding: chunked" in head
                    self.need = end + 4
            if self.chunked:
                stop = self.buffer.find(b"\r\n0\r\n\r\n", self.need - 2)
                if stop < 0:
                    return
                size = stop + 7
            else:
                if len(self.buffer) < self.need:
                    return
                size = self.need
            self.buffer = self.buffer[size:]
            self.need = -1
            self.busy = False
            self.on_response(self, self.status, time.perf_counter())
            if not self.buffer:
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_lost(self)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, max(0, math.ceil(q / 100 * n) - 1))] * 1000, 3)

    return {
        "p50": at(50),
        "p90": at(90),
        "p99": at(99),
        "p99.9": at(99.9),
        "max": round(ordered[-1] * 1000, 3),
        "mean": round(sum(ordered) / n * 1000, 3),
    }


class Generator:
    def __init__(self, target: Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.stats = Stats()
        self.loop = asyncio.get_running_loop()
        self.connections: list[Connection] = []
        self.next_request = 0
        self.stopping = False

    def request(self) -> bytes:
        requests = self.target.requests
        self.next_request += 1
        return requests[self.next_request % len(requests)]

    async def connect(self, on_response: Callable[[Connection, int, float], None]) -> Connection:
        _, conn = await self.loop.create_connection(
            lambda: Connection(on_response), self.target.host, self.target.port
        )
        conn.on_lost = self.lost
        self.connections.append(conn)
        self.stats.opened += 1
        return conn

    def lost(self, conn: Connection) -> None:
        with contextlib.suppress(ValueError):
            self.connections.remove(conn)
        if conn.busy:
            conn.busy = False
            self.stats.error("closed")
        if not self.stopping:
            self.loop.create_task(self.replace())

    async def replace(self) -> None:
        """A closed connection is reopened and goes back to work."""
        try:
            conn = await self.connect(self.response)
        except OSError:
            self.stats.error("connect")
            await asyncio.sleep(0.1)
            if not self.stopping:
                self.loop.create_task(self.replace())
            return
        self.idle(conn)

    async def watchdog(self) -> None:
        """Requests unanswered for ``timeout`` seconds are errors; their connection is closed."""
        while not self.stopping:
            await asyncio.sleep(min(0.5, self.timeout / 2))
            now = time.perf_counter()
            for conn in list(self.connections):
                if conn.busy and now - conn.sent_at > self.timeout and conn.transport:
                    conn.busy = False
                    self.stats.error("timeout")
                    conn.transport.abort()

    def record(self, conn: Connection, status: int, now: float) -> None:
        start = min(conn.due, conn.sent_at)
        if start >= self.stats.measure_from:
            if now <= self.stats.measure_until:
                self.stats.in_window += 1
            self.stats.latencies.append(now - start)
            self.stats.status[status] = self.stats.status.get(status, 0) + 1
            if conn.due < conn.sent_at:
                self.stats.lags.append(conn.sent_at - conn.due)
            else:
                self.stats.lags.append(0.0)

    # Overridden by the modes.
    def response(self, conn: Connection, status: int, now: float) -> None:
        raise NotImplementedError

    def idle(self, conn: Connection) -> None:
        raise NotImplementedError

    def backlog(self) -> int:
        """Requests due but not sent yet."""
        return 0

    async def drain(self, wait: float) -> None:
        deadline = time.perf_counter() + wait
        while (
            self.backlog() or any(c.busy for c in self.connections)
        ) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        unfinished = sum(c.busy for c in self.connections) + self.backlog()
        if unfinished:
            self.stats.errors["unfinished"] = unfinished
        self.stopping = True
        for conn in self.connections:
            if conn.transport:
                conn.transport.close()


class ClosedLoop(Generator):
    async def run(self, connections: int, warmup: float, duration: float) -> float:
        self.end = math.inf
        conns = await asyncio.gather(*(self.connect(self.response) for _ in range(connections)))
        dog = self.loop.create_task(self.watchdog())
        started = time.perf_counter()
        self.stats.measure_from = started + warmup
        self.end = self.stats.measure_until = self.stats.measure_from + duration
        for conn in conns:
            self.idle(conn)
        await asyncio.sleep(max(0.0, self.end - time.perf_counter()))
        await self.drain(self.timeout)
        dog.cancel()
        return duration

    def idle(self, conn: Connection) -> None:
        now = time.perf_counter()
        if now < self.end and conn.transport is not None:
            conn.send(self.request(), now)

    def response(self, conn: Connection, status: int, now: float) -> None:
        if now <= self.end:
            self.record(conn, status, now)
        self.idle(conn)


class OpenLoop(Generator):
    async def run(
        self, rate: float, connections: int, max_connections: int, warmup: float, duration: float
    ) -> float:
        self.max_connections = max_connections
        self.free: list[Connection] = []
        self.queue: deque[float] = deque()
        self.opening = 0
        for conn in await asyncio.gather(
            *(self.connect(self.response) for _ in range(connections))
        ):
            self.free.append(conn)
        dog = self.loop.create_task(self.watchdog())
        self.interval = 1.0 / rate
        self.started = time.perf_counter() + 0.01
        self.stats.measure_from = self.started + warmup
        self.stats.measure_until = self.stats.measure_from + duration
        self.total = int((warmup + duration) * rate)
        self.sent = 0
        self.finished = self.loop.create_future()
        self.loop.call_at(self.loop.time() + 0.01, self.tick)
        await self.finished
        await self.drain(self.timeout)
        dog.cancel()
        return duration

    def backlog(self) -> int:
        return len(self.queue)

    def tick(self) -> None:
        now = time.perf_counter()
        while self.sent < self.total:
            due = self.started + self.sent * self.interval
            if due > now + EARLY_S:
                # Timers tick in whole milliseconds: a shorter wait would spin.
                self.loop.call_later(max(due - EARLY_S - now, 0.001), self.tick)
                return
            self.sent += 1
            self.dispatch(due)
        if not self.finished.done():
            self.finished.set_result(None)

    def dispatch(self, due: float) -> None:
        while self.free:
            conn = self.free.pop()
            if conn.transport is not None:
                conn.send(self.request(), due)
                return
        self.queue.append(due)
        if len(self.connections) + self.opening < self.max_connections:
            self.opening += 1
            self.loop.create_task(self.open_more())

    async def open_more(self) -> None:
        try:
            conn = await self.connect(self.response)
        except OSError:
            self.stats.error("connect")
            return
        finally:
            self.opening -= 1
        self.idle(conn)

    def idle(self, conn: Connection) -> None:
        if conn.transport is None:
            return
        if self.queue:
            conn.send(self.request(), self.queue.popleft())
        else:
            self.free.append(conn)

    def response(self, conn: Connection, status: int, now: float) -> None:
        self.record(conn, status, now)
        self.idle(conn)


async def generate(args: argparse.Namespace) -> dict[str, Any]:
    bodies: list[bytes] = []
    if args.bodies:
        with open(args.bodies, encoding="utf-8") as f:
            items = json.load(f)
        bodies = [
            (i if isinstance(i, str) else json.dumps(i, separators=(",", ":"))).encode()
            for i in items
        ]
    elif args.body is not None:
        bodies = [args.body.encode()]
    target = Target.build(args.url, args.method.upper(), bodies, args.header)
    gc.collect()
    gc.freeze()
    gc.disable()  # no collector pauses inside the measurement
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if args.rate > 0:
        open_loop = OpenLoop(target, args.timeout)
        gen: Generator = open_loop
        duration = await open_loop.run(
            args.rate, args.connections, args.max_connections, args.warmup, args.duration
        )
    else:
        closed = ClosedLoop(target, args.timeout)
        gen = closed
        duration = await closed.run(args.connections, args.warmup, args.duration)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    stats = gen.stats
    n = len(stats.latencies)
    out: dict[str, Any] = {
        "mode": "open" if args.rate > 0 else "closed",
        "url": args.url,
        "method": args.method.upper(),
        "connections": args.connections,
        "connections_opened": stats.opened,
        "rate": args.rate or None,
        "duration_s": duration,
        "requests": n,
        # responses received in the measured window: for the open loop, what the server
        # kept up with (requests sent in the window but answered after it are in latency)
        "rps": round(stats.in_window / duration, 1),
        "latency_ms": percentiles(stats.latencies),
        "status": {str(k): v for k, v in sorted(stats.status.items())},
        "errors": stats.errors,
        "loadgen_cpu": round(cpu, 3),
    }
    if args.rate > 0:
        out["send_lag_ms"] = percentiles(stats.lags)
    return out


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--method", default="GET")
    p.add_argument("--body", default=None, help="one request body")
    p.add_argument("--bodies", default=None, help="JSON file: a list of bodies, rotated")
    p.add_argument("--header", action="append", default=[], help='"Name: value", repeatable')
    p.add_argument("-c", "--connections", type=int, default=32)
    p.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("-w", "--warmup", type=float, default=2.0, help="seconds not counted")
    p.add_argument("-r", "--rate", type=float, default=0.0, help="requests/s: open loop")
    p.add_argument("--max-connections", type=int, default=512, help="open loop")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    loop_factory: Callable[[], asyncio.AbstractEventLoop]
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        loop_factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(generate(args))
    print(json.dumps(result), flush=True)


def spawn(
    url: str,
    *,
    method: str = "GET",
    bodies: Sequence[Any] | None = None,
    connections: int = 32,
    duration: float = 10.0,
    warmup: float = 2.0,
    rate: float = 0.0,
    max_connections: int = 512,
    timeout: float = 10.0,
    during: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run the generator in its own process and return its result.

    ``during``, if given, is called in this process once the warm-up is over; it returns
    when it likes (e.g. after sampling CPU counters for the measured seconds).
    """
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        "--url", url,
        "--method", method,
        "-c", str(connections),
        "-d", str(duration),
        "-w", str(warmup),
        "-r", str(rate),
        "--max-connections", str(max_connections),
        "--timeout", str(timeout),
    ]  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(list(bodies or []), f)
    if bodies:
        argv += ["--bodies", f.name]
    try:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if during is not None:
            time.sleep(warmup + 0.5)  # the child's interpreter start, then its warm-up
            during()
        out, err = child.communicate(timeout=warmup + duration + timeout + 60)
    finally:
        os.unlink(f.name)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"load generator failed ({child.returncode}): {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


if __name__ == "__main__":
    main()
