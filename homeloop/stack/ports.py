"""Free loopback ports and waiting for a service to answer."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it); 6379 and 5432 may well be taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    every: float = 0.1,
    fatal: tuple[type[Exception], ...] = (),
) -> None:
    """Poll ``check`` until it is true; a ``TimeoutError`` naming ``what`` otherwise.

    Exceptions are taken as "not yet", except the ``fatal`` ones, which end the wait.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except fatal:
            raise
        except Exception as exc:  # the service is still coming up
            last = exc
        time.sleep(every)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s" + (f": {last}" if last else ""))
