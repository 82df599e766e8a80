"""Several uvicorn workers on one port, each with its own ``SO_REUSEPORT`` socket.

uvicorn's own ``--workers`` shares one listening socket among the workers, and whichever
wakes first accepts: a client's keep-alive connections can all land on one worker, which
then runs at a full core while the other idles (seen in the serving benchmark: 32
connections served at 0.96 cores in one run, 1.53 in the next). With a socket per worker
and ``SO_REUSEPORT``, the kernel spreads new connections over the workers by a hash of
each connection's addresses. This module is the small supervisor that makes that so: it
starts the workers as processes, restarts one that dies, and stops them all on SIGINT or
SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.5, 8.0)
STOP_TIMEOUT_S = 15.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def reuse_port_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening socket that other processes may bind to the same address too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def run_worker(app: str, host: str, port: int, options: dict[str, Any]) -> None:
    """One worker process: the app factory ``app`` on its own reuse-port socket."""
    import uvicorn

    config = uvicorn.Config(app, factory=True, host=host, port=port, **options)
    uvicorn.Server(config).run(sockets=[reuse_port_socket(host, port)])


def supervise(worker_argv: list[str], count: int) -> int:
    """Run ``count`` copies of ``worker_argv`` until a signal; restart any that exits.

    Returns the exit code: 0 after a signal, 1 if the workers cannot stay up (every one of
    them exited within a second of starting, the same failure each time: a port in use,
    a bad setting)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        return _supervise(worker_argv, count, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _supervise(worker_argv: list[str], count: int, stop: threading.Event) -> int:
    workers = [subprocess.Popen(worker_argv) for _ in range(count)]
    started = [time.monotonic()] * count
    delay = RESTART_BACKOFF_S[0]
    logger.info("started %d workers: %s", count, [w.pid for w in workers])
    while not stop.wait(0.2):
        for i, worker in enumerate(workers):
            code = worker.poll()
            if code is None:
                continue
            quick = time.monotonic() - started[i] < 1.0
            if quick and all(w.poll() is not None for w in workers):
                logger.error("every worker exited at start (last exit code %s)", code)
                return 1
            logger.warning("worker %d exited with %s; restarting in %.1fs", worker.pid, code, delay)
            if stop.wait(delay):
                break
            delay = min(delay * 2, RESTART_BACKOFF_S[1]) if quick else RESTART_BACKOFF_S[0]
            workers[i], started[i] = subprocess.Popen(worker_argv), time.monotonic()
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # uvicorn finishes the requests in flight
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for worker in workers:
        try:
            worker.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return 0


def worker_command(*args: str) -> list[str]:
    """This interpreter running ``homeloop`` with ``args``."""
    return [sys.executable, "-m", "homeloop.cli", *args]
