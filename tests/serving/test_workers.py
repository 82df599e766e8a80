"""The serve supervisor's parts: sockets that share a port and split its connections, and
workers that cannot start ending the supervisor instead of restarting forever."""

from __future__ import annotations

import socket
import sys

from homeloop.stack.ports import free_port
from serving.workers import reuse_port_socket, supervise


def test_reuse_port_sockets_share_a_port_and_split_its_connections() -> None:
    port = free_port()
    listeners = [reuse_port_socket("127.0.0.1", port) for _ in range(2)]
    clients = []
    try:
        for listener in listeners:
            listener.setblocking(False)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        accepted = [0, 0]
        for i, listener in enumerate(listeners):
            while True:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    break
                conn.close()
                accepted[i] += 1
        assert sum(accepted) == 64
        assert min(accepted) >= 8, accepted  # the kernel hashes connections over both
    finally:
        for sock in clients + listeners:
            sock.close()


def test_workers_that_cannot_start_end_the_supervisor() -> None:
    assert supervise([sys.executable, "-c", "raise SystemExit(3)"], 2) == 1
