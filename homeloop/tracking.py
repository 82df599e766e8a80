"""MLflow configured from settings, at the edge: called by entry points, never at import."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeloop.registry import EXPERIMENT
from homeloop.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


def mlflow_client(settings: Settings) -> MlflowClient:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def ensure_experiment(settings: Settings) -> str:
    """The experiment's id; a local tracking store keeps artifacts under data_dir."""
    client = mlflow_client(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return str(experiment.experiment_id)
    # A tracking server manages its own artifact store; with a database or file store
    # the artifacts go under data_dir (MLflow's default would be ./mlruns in the cwd).
    server = settings.tracking_uri.startswith(("http://", "https://", "databricks"))
    local = not server
    location = settings.artifact_root.as_uri() if local else None
    if local:
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(EXPERIMENT, artifact_location=location))


class TrackingUnreachable(RuntimeError):
    """The MLflow tracking store cannot be reached: nothing is trained or registered."""


def check_reachable(settings: Settings, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when the tracking store does not answer."""
    uri = settings.tracking_uri
    try:
        if uri.startswith(("http://", "https://")):
            import httpx

            httpx.get(f"{uri.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
        elif uri.startswith("postgresql"):
            import psycopg

            from homeloop.db import psycopg_dsn

            psycopg.connect(psycopg_dsn(uri), connect_timeout=max(1, int(timeout_s))).close()
    except Exception as exc:
        raise TrackingUnreachable(f"MLflow tracking store {uri} is unreachable: {exc}") from exc
