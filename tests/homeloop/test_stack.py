"""The local stack: real processes on free ports, answering, and gone after stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from homeloop.db import psycopg_dsn
from homeloop.settings import Settings
from homeloop.stack import LocalStack
from homeloop.stack.ports import free_port, port_open
from homeloop.stack.services import Started
from homeloop.topics import TOPICS


def test_free_port_is_free() -> None:
    port = free_port()
    assert 1024 < port < 65536
    assert not port_open(port)


def test_psycopg_dsn() -> None:
    assert psycopg_dsn("postgresql+psycopg://u@h:1/d") == "postgresql://u@h:1/d"
    with pytest.raises(ValueError, match="PostgreSQL"):
        psycopg_dsn("redis://h")


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
    stack = LocalStack(Settings(environment="test"), tmp_path)
    with stack as resolved:
        services: list[Started] = list(stack.services)
        assert sorted(stack.started) == ["broker", "postgres", "redis"]
        assert all(s.port not in (5432, 6379) for s in services)
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
    given = Settings(
        environment="test", kafka_bootstrap_servers="127.0.0.1:1", database_url="postgresql://x"
    )
    stack = LocalStack(given, tmp_path)
    with pytest.raises(RuntimeError, match="redis exited with 1"):
        stack.start()
    assert stack.started == []
