"""Session fixtures: the real broker, Redis and PostgreSQL (found or started), and isolation.

Services given by ``HOMELOOP_*`` URLs are used as they are; the rest are started once per
session from pip-installed binaries. Each test gets its own topic prefix, Feast project,
database schema and MLflow store, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeloop.db import psycopg_dsn
from homeloop.settings import Settings
from homeloop.stack import LocalStack, provision


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings whose service URLs all answer, for the whole session."""
    workdir = tmp_path_factory.mktemp("stack")
    with LocalStack(Settings(environment="test", data_dir=workdir), workdir) as resolved:
        yield resolved


def isolated(base: Settings, data_dir: Path) -> Settings:
    """A copy of ``base`` whose topics, Feast project, schema and MLflow store are its own."""
    tag = uuid.uuid4().hex[:8]
    return base.model_copy(
        update={
            "topic_prefix": f"t{tag}.",
            "feast_project": f"t{tag}",
            "db_schema": f"t_{tag}",
            "data_dir": data_dir,
        }
    )


def drop_schema(settings: Settings) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(psycopg_dsn(settings.require().database_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.db_schema))
        )


@pytest.fixture
def settings(stack_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Per-test settings on the session's services, provisioned (topics, schema; no Feast)."""
    mine = isolated(stack_settings, tmp_path / "data")
    provision(mine, apply_features=False)
    yield mine
    drop_schema(mine)


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``settings`` exported as HOMELOOP_* variables, for tests that run the CLI."""
    for name, value in settings.as_env().items():
        monkeypatch.setenv(name, value)
    return settings
