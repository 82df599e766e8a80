"""A training run end to end on the real services: MLflow, PostgreSQL, the broker.

Registers the first model as champion and the next as challenger, records both in the
append-only history and on ``model-events``; a failing gate, a failed alias move and an
unreachable MLflow leave no version and move no alias.
"""

from __future__ import annotations

import json
import socket

import numpy as np
import psycopg
import pytest

from batch.dataset import from_deals
from batch.registry_log import history
from batch.train import run_training
from homeloop.db import connect
from homeloop.model_store import alias_version, load_alias
from homeloop.registry import CHALLENGER, CHAMPION
from homeloop.settings import Settings
from homeloop.tracking import TrackingUnreachable, mlflow_client
from tests.factories import synthetic_deals
from tests.topics import read_topic

pytestmark = pytest.mark.integration


def _events(settings: Settings, want: int) -> list[dict]:
    return [json.loads(v) for v in read_topic(settings, "model-events", want=want, timeout=10)]


def test_first_run_is_champion_next_is_challenger_with_history_and_events(
    settings: Settings,
) -> None:
    training = from_deals(synthetic_deals(3_000))
    first = run_training(settings, training)
    assert (first.status, first.alias, first.version) == ("registered", CHAMPION, "1")
    assert first.chosen in {c.name for c in first.candidates} and len(first.candidates) == 3
    assert all(c.passed_checks for c in first.candidates)
    # Per-segment figures are logged beside the overall ones.
    assert any(k.startswith("test_mae_region_") for k in first.metrics)
    assert any(k.startswith("test_mae_band_") for k in first.metrics)

    client = mlflow_client(settings)
    run = client.get_run(first.run_id)
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"features.json", "feature_importance.png", "shap_summary.png", "reference",
            "candidates.csv", "checks.json", "segments.csv"} <= artifacts  # fmt: skip
    reference = {a.path for a in client.list_artifacts(first.run_id, "reference")}
    assert reference == {"reference/summary.json", "reference/sample.parquet"}
    assert run.data.params["window_start"] == str(training.times.iloc[0])
    nested = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{first.run_id}'"
    )
    assert len(nested) == 3

    loaded = load_alias(settings, CHAMPION)
    assert loaded.model.features == training.columns and loaded.model.target.kind
    served = loaded.model.predict(training.features[-50:])
    assert np.all(np.isfinite(served)) and np.all(served > 0)

    second = run_training(settings, training)  # same data, same model: no worse than champion
    assert (second.status, second.alias, second.version) == ("registered", CHALLENGER, "2")
    assert second.champion is not None
    assert second.champion["test_mae"] == pytest.approx(first.metrics["test_mae"])
    assert alias_version(settings, CHAMPION) == "1"

    rows = history(settings)
    assert [(r["action"], r["version"], r["alias"]) for r in rows] == [
        ("registered", "1", None),
        ("promoted", "1", CHAMPION),
        ("registered", "2", None),
        ("staged", "2", CHALLENGER),
    ]
    with connect(settings) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute(f'DELETE FROM "{settings.db_schema}".model_registry_history')

    events = _events(settings, 4)
    assert [(e["action"], e["version"]) for e in events] == [
        ("registered", "1"),
        ("promoted", "1"),
        ("registered", "2"),
        ("staged", "2"),
    ]
    assert events[3]["alias"] == CHALLENGER


def test_a_failing_gate_registers_nothing_and_says_why(settings: Settings) -> None:
    strict = settings.model_copy(update={"gate_max_mae": 1.0})
    outcome = run_training(strict, synthetic_deals(1_500))
    assert outcome.status == "rejected" and outcome.version is None
    assert any("MAE" in r and "not below 1" in r for r in outcome.reasons)
    assert mlflow_client(settings).search_model_versions(f"name='{settings.model_name}'") == []
    assert [r["action"] for r in history(settings)] == ["rejected"]
    event = _events(settings, 1)[0]
    assert event["action"] == "rejected" and "not below" in event["reason"]


def test_when_the_alias_cannot_be_recorded_the_version_is_removed(settings: Settings) -> None:
    with connect(settings) as conn:  # the history table is gone: the transaction fails
        conn.execute(f'ALTER TABLE "{settings.db_schema}".model_registry_history RENAME TO gone')
    with pytest.raises(psycopg.errors.UndefinedTable):
        run_training(settings, synthetic_deals(1_500))
    client = mlflow_client(settings)
    assert client.search_model_versions(f"name='{settings.model_name}'") == []
    assert alias_version(settings, CHAMPION) is None


def test_an_unreachable_tracking_store_fails_before_training(settings: Settings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = settings.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{port}"})
    with pytest.raises(TrackingUnreachable, match="unreachable"):
        run_training(down, synthetic_deals(1_500))
    assert history(settings) == []
