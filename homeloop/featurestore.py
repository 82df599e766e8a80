"""The Feast feature store, configured from settings rather than from a YAML file.

Registry in PostgreSQL (shared by every deployable), online store in Redis, offline
store as Parquet files under ``data_dir/offline``. One Feast project per settings
object, which is also how tests isolate themselves.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from homeloop.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

logger = logging.getLogger(__name__)

FEATURE_SERVICE = "price_model_v1"
LISTING_VIEW = "listing_features"
LISTING_PUSH = "listing_push"


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


def repo_config(settings: Settings) -> RepoConfig:
    from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
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
        offline_store=DaskOfflineStoreConfig(),
        entity_key_serialization_version=3,
        repo_path=offline_dir(settings),
    )


def offline_dir(settings: Settings) -> Path:
    """Where the Parquet offline store lives; FileSource paths are relative to it."""
    path = (settings.data_dir / "offline").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def feature_store(settings: Settings) -> FeatureStore:
    from feast import FeatureStore

    config = repo_config(settings)
    return FeatureStore(config=config, repo_path=str(offline_dir(settings)))


def apply_repo(settings: Settings) -> None:
    """Register the repo's entities, sources, views and services (``feast apply``)."""
    from feature_repo.definitions import OBJECTS

    store = feature_store(settings)
    store.apply([*OBJECTS])
    logger.info("feast repo applied project=%s objects=%d", settings.feast_project, len(OBJECTS))
