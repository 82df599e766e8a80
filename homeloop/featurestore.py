"""The Feast feature store, configured from settings rather than from a YAML file.

Registry in PostgreSQL (shared by every deployable), online store in Redis, offline
store in PostgreSQL (the tables of migration 0002, in ``settings.db_schema``). One Feast
project per settings object, which is also how tests isolate themselves.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from homeloop.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import (
        PostgreSQLOfflineStoreConfig,
    )
    from feast.repo_config import RepoConfig

logger = logging.getLogger(__name__)

FEATURE_SERVICE = "price_model_v1"
LISTING_VIEW = "listing_features"
ENGAGEMENT_VIEW = "engagement_features"
MARKET_VIEWS = ("complex_market", "dong_market", "region_market")


def redis_connection_string(redis_url: str) -> str:
    """Feast's ``host:port,db=N,password=...`` form of a ``redis://`` URL."""
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis:// URL: {redis_url!r}")
    out = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    db = parts.path.lstrip("/")
    if db:
        out += f",db={int(db)}"
    if parts.password:
        out += f",password={unquote(parts.password)}"
    if parts.username:
        out += f",username={unquote(parts.username)}"
    if parts.scheme == "rediss":
        out += ",ssl=true"
    return out


def postgres_offline_config(settings: Settings) -> PostgreSQLOfflineStoreConfig:
    """Feast's PostgreSQL offline store on homeloop's database and schema."""
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import (
        PostgreSQLOfflineStoreConfig,
    )

    parts = urlsplit(settings.require().database_url)
    return PostgreSQLOfflineStoreConfig(
        host=parts.hostname or "localhost",
        port=parts.port or 5432,
        database=parts.path.lstrip("/") or "postgres",
        db_schema=settings.db_schema,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        sslmode="prefer",
    )


def repo_config(settings: Settings) -> RepoConfig:
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.infra.registry.sql import SqlRegistryConfig
    from feast.repo_config import RepoConfig

    services = settings.require()
    return RepoConfig(
        project=settings.feast_project,
        provider="local",
        registry=SqlRegistryConfig(
            registry_type="sql",
            path=services.database_url,
            cache_ttl_seconds=60,
            sqlalchemy_config_kwargs={"echo": False, "pool_pre_ping": True},
        ),
        online_store=RedisOnlineStoreConfig(
            connection_string=redis_connection_string(services.redis_url)
        ),
        offline_store=postgres_offline_config(settings),
        entity_key_serialization_version=3,
        repo_path=repo_dir(settings),
    )


def repo_dir(settings: Settings) -> Path:
    """Feast's repo path (it keeps nothing there that homeloop reads)."""
    path = (settings.data_dir / "feast").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def feature_store(settings: Settings) -> FeatureStore:
    from feast import FeatureStore

    config = repo_config(settings)
    return FeatureStore(config=config, repo_path=str(repo_dir(settings)))


def apply_repo(settings: Settings) -> None:
    """Register the repo's entities, sources, views and services (``feast apply``)."""
    from feature_repo.definitions import OBJECTS

    store = feature_store(settings)
    store.apply([*OBJECTS])
    logger.info("feast repo applied project=%s objects=%d", settings.feast_project, len(OBJECTS))
