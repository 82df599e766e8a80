"""The one settings object: every ``HOMELOOP_*`` environment variable is read here and nowhere else.

A service URL left unset means "start one locally" (see :mod:`homeloop.stack`); the launcher fills
it in and hands the resolved settings to the components, so components never see ``None`` URLs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ADMIN_TOKEN = "changethis"

Environment = Literal["local", "test", "staging", "production"]


class Settings(BaseSettings):
    """Configuration of every homeloop deployable, from ``HOMELOOP_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="HOMELOOP_", extra="ignore", frozen=True)

    environment: Environment = "local"

    # Services. ``None`` means: the local stack starts one (``homeloop up``).
    kafka_bootstrap_servers: str | None = None
    redis_url: str | None = None
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host:5432/db"
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="None: a SQLite tracking store under data_dir"
    )

    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    admin_token: SecretStr = SecretStr(DEFAULT_ADMIN_TOKEN)

    # Simulated seconds per wall-clock second: 10080 runs a simulated week in a minute.
    time_scale: float = Field(default=10080.0, gt=0)
    simulator_seed: int = 42

    data_dir: Path = Path(".homeloop")
    # Where raw snapshots and quarantined batches go: a path or fsspec URI (s3://...);
    # None keeps them under data_dir.
    raw_store_uri: str | None = None
    feast_project: str = Field(default="homeloop", pattern=r"^[A-Za-z0-9_]+$")
    db_schema: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]*$")
    model_name: str = "homeloop-price"

    # Training gates. The source design's absolute MAE gate (< 350만원) is below the noise
    # floor of every market here (the simulator's ~5,300만원; on the real 성남 exports the
    # naive per-complex baseline is off by ~15,000만원), so it is off unless set; MAPE is
    # the absolute error gate by default, and R² > 0.80 is the source design's.
    gate_max_mae: float | None = Field(default=None, gt=0)
    gate_min_r2: float | None = 0.80
    gate_max_mape: float | None = Field(default=15.0, gt=0)
    # How much worse than the champion (test MAE, same window, %) a candidate may be.
    gate_champion_tolerance_pct: float = Field(default=0.0, ge=0)
    # Retrain requests arriving within this many seconds of each other make one run; a
    # burst never delays a run by more than the maximum.
    trainer_debounce_s: float = Field(default=30.0, ge=0)
    trainer_max_wait_s: float = Field(default=300.0, ge=0)
    # Simulated deals a run trains on when the deals table has fewer than the minimum.
    trainer_simulated_deals: int = Field(default=20_000, ge=500)

    # Serving: most listings one batch request may ask for (more is a 413), and how often
    # a replica checks the registry's aliases besides following model-events.
    serving_batch_limit: int = Field(default=100, ge=1, le=10_000)
    # Server processes behind the one port (uvicorn workers). One Python process tops out
    # near one core; the second uses the other core of a 2-core host.
    serving_workers: int = Field(default=2, ge=1, le=64)
    serving_registry_poll_s: float = Field(default=30.0, gt=0)
    # Compile LightGBM models to machine code on load (cached under data_dir); off, or if
    # compiling fails, LightGBM's own predictor serves (same answers, slower).
    serving_compile_trees: bool = True

    # MOLIT open API (data.go.kr). The key is a secret; the cache saves reruns a call.
    molit_base_url: str = "https://apis.data.go.kr/1613000"
    molit_service_key: SecretStr | None = None
    molit_rows_per_page: int = Field(default=1000, ge=1, le=1000)
    molit_timeout_s: float = Field(default=10.0, gt=0)
    molit_cache_ttl_s: int = Field(default=7 * 24 * 3600, ge=0)

    # The daily ingestion run: which 시군구 to collect, and the crawled files' folder.
    ingest_lawd_codes: list[str] = ["41131", "41133", "41135"]
    ingest_crawl_dir: Path | None = None

    # The feedback loop (streams): a click, inquiry or contract counts for a prediction
    # within the attribution window after it (event time); an event naming a prediction
    # not seen yet waits this many wall seconds for it; events further than the maximum
    # lateness from the watermark are kept but left out of rates and error.
    feedback_attribution_days: float = Field(default=14.0, gt=0)
    feedback_attribution_wait_s: float = Field(default=60.0, ge=0)
    feedback_max_lateness_days: float = Field(default=2.0, gt=0)
    # How often the loop publishes its snapshot to `monitoring` (wall seconds), and how long
    # a retrain trigger stays quiet after it fired for a model version (event-time days).
    feedback_snapshot_s: float = Field(default=5.0, gt=0)
    feedback_trigger_cooldown_days: float = Field(default=7.0, gt=0)
    # Drift: rows per compared window, and the traffic the false-alarm budget is set for
    # (predictions per second of event time): about one false alarm a month at this rate.
    drift_window_size: int = Field(default=2_000, ge=100)
    drift_rate_per_s: float = Field(default=1.0, gt=0)
    drift_false_alarms_per_month: float = Field(default=1.0, gt=0)
    # Contracts per second of event time the residual detectors' budget is set for.
    drift_contract_rate_per_s: float = Field(default=0.02, gt=0)
    # A simulation's time origin (Unix seconds) shared by every process it starts: when set,
    # event time is simulated, the simulator's start + elapsed wall time × time_scale.
    sim_started_at: float | None = None

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Prediction events held in memory for the broker; past that (or during an outage)
    # they wait in a spool under data_dir, up to this many MB, before any is dropped.
    publish_buffer_size: int = Field(default=10_000, ge=1)
    publish_spool_max_mb: int = Field(default=512, ge=1)
    worker_web_port: int = 6066
    # faust binds 0.0.0.0 unless told otherwise; only a container should listen outside.
    worker_web_bind: str = "127.0.0.1"
    # Consumer-group timings. With faust's defaults (session 60 s) the first join takes
    # ~30 s: the broker holds a join for half the session timeout. 6 s (Kafka's minimum by
    # default) makes it ~3 s, and heartbeats every 2 s keep a live worker in the group.
    worker_rebalance_timeout: float = Field(default=3.0, gt=0)
    worker_session_timeout: float = Field(default=6.0, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _refuse_default_secret_outside_local(self) -> Self:
        local = self.environment in ("local", "test")
        if not local and self.admin_token.get_secret_value() == DEFAULT_ADMIN_TOKEN:
            raise ValueError(
                "HOMELOOP_ADMIN_TOKEN still has its default value; set a secret token "
                f"outside local runs (HOMELOOP_ENVIRONMENT={self.environment})"
            )
        return self

    def topic(self, base: str) -> str:
        """The broker-side name of a design topic, with the configured prefix."""
        return f"{self.topic_prefix}{base}"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI; a SQLite file under ``data_dir`` by default. (Not cached: a
        cached value would survive ``model_copy`` with another ``data_dir``.)"""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def raw_root(self) -> str:
        return self.raw_store_uri or str(self.data_dir.resolve())

    @property
    def artifact_root(self) -> Path:
        return (self.data_dir / "mlartifacts").resolve()

    def require(self) -> ResolvedServices:
        """The service URLs, or a clear error naming the missing ones."""
        missing = [
            name
            for name in ("kafka_bootstrap_servers", "redis_url", "database_url")
            if getattr(self, name) is None
        ]
        if missing:
            names = ", ".join(f"HOMELOOP_{m.upper()}" for m in missing)
            raise RuntimeError(f"{names} not set: run under `homeloop up` or set them")
        assert self.kafka_bootstrap_servers and self.redis_url and self.database_url
        return ResolvedServices(self.kafka_bootstrap_servers, self.redis_url, self.database_url)

    def as_env(self) -> dict[str, str]:
        """These settings as ``HOMELOOP_*`` variables, to hand to a child process."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, list | dict):
                value = json.dumps(value)  # how pydantic-settings reads complex values
            env[f"HOMELOOP_{name.upper()}"] = str(value)
        return env


class ResolvedServices:
    """Service addresses once they are known (given, or started by the local stack)."""

    __slots__ = ("database_url", "kafka_bootstrap_servers", "redis_url")

    def __init__(self, kafka_bootstrap_servers: str, redis_url: str, database_url: str) -> None:
        self.kafka_bootstrap_servers = kafka_bootstrap_servers
        self.redis_url = redis_url
        self.database_url = database_url


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
