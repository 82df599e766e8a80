"""Provision given services: topics with their partition counts, the schema, the Feast repo."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from homeloop.db import migrate, psycopg_dsn
from homeloop.settings import Settings
from homeloop.topics import TOPICS

logger = logging.getLogger(__name__)


async def create_topics(settings: Settings) -> list[str]:
    """Create every design topic that does not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.require().kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(settings.topic(spec.name), spec.partitions, 1)
            for spec in TOPICS
            if settings.topic(spec.name) not in existing
        ]
        if wanted:
            # Another process may create them at the same moment: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()


def create_schema(settings: Settings) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(psycopg_dsn(settings.require().database_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(settings.db_schema))
        )


def provision(settings: Settings, *, apply_features: bool = True) -> None:
    """Make given services ready for homeloop; safe to run again."""
    created = asyncio.run(create_topics(settings))
    create_schema(settings)
    migrate(settings)
    if apply_features:
        from homeloop.featurestore import apply_repo

        apply_repo(settings)
    logger.info(
        "provisioned topics_created=%d schema=%s feast=%s",
        len(created),
        settings.db_schema,
        settings.feast_project if apply_features else "skipped",
    )
