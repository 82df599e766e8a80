"""The local stack: real processes on free ports, answering, and gone after stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from homeloop.db import psycopg_dsn
from homeloop.settings import Settings
from homeloop.stack import LocalStack
from homeloop.stack.launcher import OWNER_FILE, sweep_orphaned_scratch
from homeloop.stack.ports import free_port, port_open, wait_until
from homeloop.stack.services import Started
from homeloop.topics import TOPICS


def test_free_port_is_free() -> None:
    port = free_port()
    assert 1024 < port < 65536
    assert not port_open(port)


def test_wait_until_polls_until_true_and_names_what_timed_out() -> None:
    calls = iter([False, False, True])
    wait_until(lambda: next(calls), 1.0, "thing", every=0.01)

    def failing() -> bool:
        raise ConnectionRefusedError("nope")

    with pytest.raises(TimeoutError, match="thing not ready after 0s: nope"):
        wait_until(failing, 0.05, "thing", every=0.01)
    with pytest.raises(ConnectionRefusedError):
        wait_until(failing, 1.0, "thing", fatal=(ConnectionRefusedError,))


def test_sweep_removes_only_scratch_whose_owner_is_dead(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid no longer exists
    orphan, mine, starting, failed, other = (
        tmp_path / "homeloop-redis-orphan",
        tmp_path / "homeloop-pg-mine",
        tmp_path / "homeloop-broker-starting",
        tmp_path / "homeloop-pg-failed",
        tmp_path / "homeloop-bench-other",
    )
    for folder in (orphan, mine, starting, failed, other):
        folder.mkdir()
    (orphan / OWNER_FILE).write_text(str(gone.pid))
    (mine / OWNER_FILE).write_text(str(os.getpid()))
    (other / OWNER_FILE).write_text(str(gone.pid))
    day_ago = time.time() - 86400
    os.utime(failed, (day_ago, day_ago))  # a start that failed before writing its owner
    assert sorted(sweep_orphaned_scratch(tmp_path)) == [failed, orphan]
    assert mine.exists() and starting.exists() and other.exists()


def test_psycopg_dsn() -> None:
    assert psycopg_dsn("postgresql+psycopg://u@h:1/d") == "postgresql://u@h:1/d"
    with pytest.raises(ValueError, match="PostgreSQL"):
        psycopg_dsn("redis://h")


# Only these URLs are given, whatever HOMELOOP_* says (CI may point the session at services).
NOTHING_GIVEN: dict[str, str | None] = {
    "kafka_bootstrap_servers": None,
    "redis_url": None,
    "database_url": None,
}
ONLY_REDIS = {
    **NOTHING_GIVEN,
    "kafka_bootstrap_servers": "127.0.0.1:1",
    "database_url": "postgresql://x",
}


def given(urls: dict[str, str | None]) -> Settings:
    return Settings(environment="test").model_copy(update=urls)


async def _round_trip(bootstrap: str) -> bytes:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("stack-check", b"hello", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "stack-check", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), 20)
        return bytes(message.value or b"")
    finally:
        await consumer.stop()


@pytest.mark.integration
def test_starts_missing_services_and_stops_them(tmp_path: Path) -> None:
    stack = LocalStack(given(NOTHING_GIVEN), tmp_path)
    with stack as resolved:
        services: list[Started] = list(stack.services)
        assert sorted(stack.started) == ["broker", "postgres", "redis"]
        assert set(stack.timings) == {"broker", "redis", "postgres", "start"}
        assert all(s.port not in (5432, 6379) for s in services)
        assert all((s.scratch / OWNER_FILE).read_text() == str(os.getpid()) for s in services)
        assert asyncio.run(_round_trip(resolved.require().kafka_bootstrap_servers)) == b"hello"
        client = redis.Redis.from_url(resolved.require().redis_url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        with psycopg.connect(psycopg_dsn(resolved.require().database_url)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    for service in services:
        assert not service.process.alive()
        assert not port_open(service.port)
        assert not service.scratch.exists()
    assert "stop" in stack.timings
    stack.stop()  # idempotent


@pytest.mark.integration
def test_given_urls_start_nothing(stack_settings: Settings, tmp_path: Path) -> None:
    stack = LocalStack(stack_settings, tmp_path)
    with stack as resolved:
        assert stack.started == []
        assert resolved == stack_settings


@pytest.mark.integration
def test_provision_creates_topics_with_partitions(settings: Settings) -> None:
    async def describe() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.require().kafka_bootstrap_servers)
        await admin.start()
        try:
            names = [settings.topic(t.name) for t in TOPICS]
            described = await admin.describe_topics(names)
            return {d["topic"]: len(d["partitions"]) for d in described}
        finally:
            await admin.close()

    partitions = asyncio.run(describe())
    assert partitions == {settings.topic(t.name): t.partitions for t in TOPICS}
    with psycopg.connect(psycopg_dsn(settings.require().database_url)) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
            (settings.db_schema,),
        ).fetchone()
    assert found == (1,)


@pytest.mark.integration
def test_a_service_that_dies_gives_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import homeloop.stack.services as services

    monkeypatch.setattr(services, "redis_binary", lambda: "/bin/false")
    stack = LocalStack(given(ONLY_REDIS), tmp_path)
    with pytest.raises(RuntimeError, match="redis exited with 1"):
        stack.start()
    assert stack.started == []


@pytest.mark.integration
def test_a_service_that_never_answers_times_out_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import homeloop.stack.launcher as launcher
    import homeloop.stack.services as services

    hangs = tmp_path / "hangs"
    hangs.write_text("#!/bin/sh\necho still warming up\nexec sleep 60\n")
    hangs.chmod(0o755)
    monkeypatch.setattr(services, "redis_binary", lambda: str(hangs))
    monkeypatch.setattr(launcher, "HEALTH_TIMEOUT_S", 1.0)
    stack = LocalStack(given(ONLY_REDIS), tmp_path)
    with pytest.raises(TimeoutError, match=r"(?s)redis on port .* not ready.*still warming up"):
        stack.start()
    assert stack.started == []


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from homeloop.settings import Settings
    from homeloop.stack import LocalStack

    settings = Settings(environment="test").model_copy(update={urls!r})
    stack = LocalStack(settings, Path(sys.argv[1]))
    stack.start()
    [redis] = stack.services
    print(redis.process.pid, redis.port, redis.scratch, flush=True)
    time.sleep(60)
    """
)


def _dead(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (the container's init may not reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.integration
def test_services_die_with_a_killed_parent_and_their_data_is_swept(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD.format(urls=ONLY_REDIS), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    ) as parent:
        try:
            assert parent.stdout is not None
            pid_text, port_text, scratch_text = parent.stdout.readline().split()
        finally:
            parent.send_signal(signal.SIGKILL)  # no atexit, no __exit__: only the kernel helps
    pid, port, scratch = int(pid_text), int(port_text), Path(scratch_text)
    deadline = time.monotonic() + 10
    while not (_dead(pid) and not port_open(port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _dead(pid) and not port_open(port)
    assert scratch.exists()
    assert scratch in sweep_orphaned_scratch(scratch.parent)
    assert not scratch.exists()
