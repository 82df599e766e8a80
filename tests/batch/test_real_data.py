"""On the real 성남시 MOLIT exports: ingested as ingestion loads them, trained through the
database, and better than the naive per-complex baseline on a later, time-ordered window."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch import training_data
from batch.baseline import against_naive
from batch.candidates import GRID
from batch.dataset import from_deals, time_split
from batch.ingest.molit_csv import read_export
from batch.ingest.pipeline import ingest_frame
from batch.labels import from_exports
from batch.market import run_market_job
from batch.trainer import train_by_hand
from homeloop.model_store import load_alias
from homeloop.settings import Settings

EXPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "molit" / "csv_export"


def _exports(kind: str) -> list:
    prefix = "apt_trade_" if kind == "trade" else "apt_rent_"
    return [read_export(p.read_bytes(), kind) for p in sorted(EXPORTS.glob(f"{prefix}*.csv"))]  # type: ignore[arg-type]


def test_the_grid_beats_the_naive_baseline_on_real_exports() -> None:
    import pandas as pd

    from batch.fitting import fit_grid, prepare

    deals, leases = from_exports(pd.concat(_exports("trade")), pd.concat(_exports("rent")))
    assert len(deals) > 9_000 and deals["deal_time"].is_monotonic_increasing
    training = from_deals(deals, leases)
    train, val, test = time_split(len(training))
    x, y = training.features, training.labels
    fitted = fit_grid(GRID, prepare(training, train, val))
    best = min(fitted, key=lambda f: abs(f.model.predict(x[val]) - y[val]).mean())
    assert training.rows is not None
    result = against_naive(training.rows, y, best.model.predict(x[test]), test)
    assert result["coverage"] > 0.9
    assert result["model_mape"] < result["naive_mape"], result
    assert result["model_mae"] < result["naive_mae"], result


@pytest.mark.integration
def test_trains_from_the_ingested_exports_in_the_database(settings: Settings) -> None:
    for kind in ("trade", "rent"):
        for frame in _exports(kind):
            result = ingest_frame(settings, frame, kind, "molit-csv", today=pd_today())  # type: ignore[arg-type]
            assert result.status == "loaded", result.report
    # The market job reads the same rows from the database as training does.
    run = run_market_job(
        settings, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 7, tzinfo=UTC),
        materialize=False,
    )  # fmt: skip
    assert run.source == "database" and run.rows["complex_id"] > 100
    data = training_data.load(settings, "auto")
    assert data.source == "database" and len(data.training) > 9_000
    outcome = train_by_hand(settings, source="database")
    assert outcome is not None and outcome.status == "registered", outcome.reasons
    assert outcome.metrics["test_r2"] > 0.8
    served = load_alias(settings).model
    assert served.target.kind == "log_market_ratio"


def pd_today():  # the exports end in 2026-05; ingestion refuses contracts in its future
    from datetime import date

    return date(2026, 11, 23)
