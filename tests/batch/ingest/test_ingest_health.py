"""Run-health rules: processing-time spikes and the collection success rate."""

from __future__ import annotations

import pytest

from batch.ingest.health import spikes, success_rate
from homeloop.settings import Settings


def test_a_stage_three_times_slower_than_its_median_is_a_spike() -> None:
    history = [{"validate": 0.1, "load": 1.0}] * 4 + [{"validate": 0.12, "load": 1.2}]
    assert spikes({"validate": 0.11, "load": 3.0}, history) == []
    found = spikes({"validate": 0.5, "load": 3.1}, history)
    assert [(stage, median) for stage, _, median in found] == [("validate", 0.1), ("load", 1.0)]


def test_no_spike_without_enough_history() -> None:
    assert spikes({"load": 100.0}, [{"load": 1.0}] * 4) == []


def test_success_rate() -> None:
    assert success_rate([]) is None
    assert success_rate(["loaded"] * 9 + ["failed"]) == 0.9
    assert success_rate(["loaded", "quarantined", "failed", "loaded"]) == 0.5


@pytest.mark.integration
def test_alerts_from_the_batch_log(settings: Settings) -> None:
    from datetime import UTC, datetime, timedelta

    from batch.ingest import store
    from batch.ingest.health import health_alerts
    from homeloop.db import connect

    start = datetime(2026, 11, 1, tzinfo=UTC)
    with connect(settings) as conn:
        for i in range(8):
            status = "failed" if i in (2, 5) else "loaded"
            store.record_batch(
                conn, settings.db_schema, batch_id=f"b{i}", source="molit_api", kind="trade",
                started_at=start + timedelta(hours=i), finished_at=start + timedelta(hours=i),
                status=status, rows={}, report=None, snapshot_uri=None,
                stage_seconds={"load": 9.0 if i == 7 else 1.0} if status == "loaded" else {},
            )  # fmt: skip
        conn.commit()
        alerts = health_alerts(conn, settings.db_schema, "molit_api", "b7")
    rules = {(a.rule, a.priority): a for a in alerts}
    assert rules[("ingest_stage_slow", "P3")].value == 9.0
    low = rules[("collection_success_low", "P2")]
    assert low.value == 0.75 and low.threshold == 0.9
