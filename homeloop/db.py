"""homeloop's own PostgreSQL tables: migrations (Alembic) and connections, from settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from homeloop.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def psycopg_dsn(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` → ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return f"postgresql://{rest}"


def connect(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(psycopg_dsn(settings.require().database_url))


def migrate(settings: Settings) -> None:
    """Bring ``settings.db_schema`` to the newest migration (idempotent)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(settings.require().database_url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            config.attributes["schema"] = settings.db_schema
            command.upgrade(config, "head")
    finally:
        engine.dispose()
