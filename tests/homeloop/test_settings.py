"""Settings: one object, HOMELOOP_* variables, default secret refused outside local runs."""

import pytest
from pydantic import ValidationError

from homeloop.settings import Settings


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMELOOP_REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("HOMELOOP_TOPIC_PREFIX", "dev.")
    monkeypatch.setenv("HOMELOOP_TIME_SCALE", "60")
    settings = Settings()
    assert settings.redis_url == "redis://example:6380/2"
    assert settings.topic("listings") == "dev.listings"
    assert settings.time_scale == 60.0


def test_default_admin_token_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="HOMELOOP_ADMIN_TOKEN"):
        Settings(environment="production")
    assert Settings(environment="production", admin_token="s3cret").environment == "production"
    assert Settings(environment="local").admin_token.get_secret_value() == "changethis"


def test_admin_token_is_secret_in_repr() -> None:
    settings = Settings(admin_token="very-secret")
    assert "very-secret" not in repr(settings)
    assert settings.as_env()["HOMELOOP_ADMIN_TOKEN"] == "very-secret"


def test_require_names_missing_services() -> None:
    with pytest.raises(RuntimeError, match="HOMELOOP_KAFKA_BOOTSTRAP_SERVERS"):
        Settings(redis_url="redis://x", database_url="postgresql://x").require()


def test_as_env_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        kafka_bootstrap_servers="127.0.0.1:1",
        redis_url="redis://127.0.0.1:2/0",
        database_url="postgresql+psycopg://u@h:3/d",
        topic_prefix="t1.",
        time_scale=5.0,
    )
    for name, value in settings.as_env().items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings  # what a child process reads back from its environment


def test_bad_values_are_rejected() -> None:
    with pytest.raises(ValidationError, match="time_scale"):
        Settings(time_scale=0)
    with pytest.raises(ValidationError, match="topic_prefix"):
        Settings(topic_prefix="bad prefix!")
