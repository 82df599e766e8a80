"""Training's pure parts on real boosters: target, contributions, checks, gates, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from batch.baseline import naive_prices
from batch.behaviour import behaviour_checks, bigger_flat_not_cheaper, within_validation_range
from batch.candidates import GRID, Candidate
from batch.dataset import TrainingSet, from_deals, time_split
from batch.evaluation import evaluate
from batch.fitting import Split, fit_grid, prepare
from batch.gates import Thresholds, gate_failures
from batch.train import MIN_TRAINING_ROWS, TrainingRefused, usable
from batch.trainer import is_due
from homeloop.features import MODEL_FEATURES
from homeloop.price_model import AREA, LEVEL, PriceModel, TargetSpec
from tests.factories import synthetic_deals

AREA_AT, LEVEL_AT = MODEL_FEATURES.index(AREA), MODEL_FEATURES.index(LEVEL)


def _split(training: TrainingSet) -> tuple[Split, list[slice]]:
    parts = time_split(len(training))
    return prepare(training, parts[0], parts[1]), parts


@pytest.fixture(scope="module")
def trained() -> tuple[TrainingSet, list, list[slice]]:
    training = from_deals(synthetic_deals(3_000))
    split, parts = _split(training)
    return training, fit_grid(GRID, split, cores=2), parts


def test_target_round_trips_and_survives_the_tag() -> None:
    spec = TargetSpec.fitted(np.array([100_000.0, 80_000.0]), np.array([100.0, 80.0]))
    assert spec.fallback_price_per_sqm == 1_000.0
    assert TargetSpec.decode(spec.encode()) == spec
    prices = np.array([90_000.0, 90_000.0])
    base = spec.base(np.array([np.nan, 1_200.0]))  # no market level: the fallback stands in
    assert list(base) == [1_000.0, 1_200.0]
    assert spec.from_target(spec.to_target(prices, base), base) == pytest.approx(prices)
    with pytest.raises(ValueError, match="unknown target"):
        TargetSpec.decode('{"kind": "log_price"}')


def test_grid_fits_every_candidate_in_order_and_each_beats_a_constant(trained) -> None:
    training, fitted, (_, _, test) = trained
    assert [f.candidate.name for f in fitted] == [c.name for c in GRID]
    y = training.labels[test]
    constant = np.mean(np.abs(y - np.median(training.labels)))
    for f in fitted:
        assert 1 <= f.trees <= f.candidate.n_estimators
        mae = np.mean(np.abs(f.model.predict(training.features[test]) - y))
        assert mae < constant / 3, f.candidate.name


def test_contributions_are_in_manwon_and_sum_to_the_prediction(trained) -> None:
    training, fitted, (_, _, test) = trained
    rows = training.features[test][:200]
    for f in fitted:  # one XGBoost and one LightGBM at least
        contrib = f.model.contributions(rows)
        assert contrib.shape == (len(rows), len(training.columns) + 1)
        assert contrib.sum(axis=1) == pytest.approx(f.model.predict(rows), rel=1e-4)


def test_behaviour_checks_pass_a_sound_model_and_catch_a_backwards_one(trained) -> None:
    training, fitted, (_, val, test) = trained
    rows = training.rows.iloc[test] if training.rows is not None else None
    checks = behaviour_checks(fitted[0].model, training.features[test], rows, training.labels[val])
    assert [c.name for c in checks] == [
        "bigger_flat_not_cheaper",
        "listing_id_is_not_a_feature",
        "within_validation_range",
    ]
    assert all(c.passed for c in checks), [c.detail for c in checks]

    # Labels that fall with area: without the grid's monotone constraint the model learns
    # "bigger is cheaper" and the check catches it; with it, the model cannot.
    backwards = from_deals(synthetic_deals(3_000))
    area = backwards.features[:, AREA_AT]
    flipped = TrainingSet(backwards.features, 400_000 - area * 1_500, backwards.times)
    split, _ = _split(flipped)
    free = "(" + ",".join("0" for _ in MODEL_FEATURES) + ")"
    unconstrained = Candidate("free", "xgboost", 100, 0.1, {"monotone_constraints": free})
    model = fit_grid((unconstrained,), split)[0].model
    check = bigger_flat_not_cheaper(model, flipped.features[-300:])
    assert not check.passed and "cheaper" in check.detail
    constrained = fit_grid(GRID, split)
    assert all(
        bigger_flat_not_cheaper(f.model, flipped.features[-300:]).passed for f in constrained
    )

    # Predictions far outside what validation saw are caught.
    narrow = within_validation_range(fitted[0].model, training.features[test], np.array([1.0, 2.0]))
    assert not narrow.passed and "outside" in narrow.detail


def test_model_refuses_a_market_ratio_target_without_the_level() -> None:
    with pytest.raises(ValueError, match="needs"):
        PriceModel("xgboost", None, ("floor", "area_sqm"), TargetSpec())


def test_gates_name_every_failure() -> None:
    metrics = {"test_mae": 6_000.0, "test_r2": 0.75, "test_mape": 16.0}
    thresholds = Thresholds(max_mae=350.0, min_r2=0.80, max_mape=15.0)
    reasons = gate_failures(metrics, thresholds, champion_mae=5_000.0)
    assert len(reasons) == 4
    assert "350" in reasons[0] and "R²" in reasons[1] and "MAPE" in reasons[2]
    assert "champion" in reasons[3]
    good = {"test_mae": 5_000.0, "test_r2": 0.9, "test_mape": 4.0}
    assert gate_failures(good, Thresholds(None, 0.8, 15.0), champion_mae=5_000.0) == []
    tolerant = Thresholds(None, None, None, champion_tolerance_pct=5.0)
    assert gate_failures({**good, "test_mae": 5_200.0}, tolerant, 5_000.0) == []
    assert gate_failures({**good, "test_mae": 5_300.0}, tolerant, 5_000.0) != []


def test_evaluation_reports_regions_and_price_bands() -> None:
    y = np.array([40_000.0, 60_000.0, 120_000.0, 250_000.0])
    p = np.array([44_000.0, 60_000.0, 110_000.0, 250_000.0])
    metrics, table = evaluate(y, p, np.array(["41135", "41135", "41131", "41131"]), "test")
    assert metrics["test_mae"] == pytest.approx(3_500.0)
    assert metrics["test_mae_region_41135"] == pytest.approx(2_000.0)
    assert metrics["test_mae_region_41131"] == pytest.approx(5_000.0)
    assert metrics["test_mae_band_0-50000"] == pytest.approx(4_000.0)
    assert metrics["test_mae_band_200000-up"] == 0.0
    assert set(table["segment"]) == {"region", "band"}
    with pytest.raises(ValueError, match="NaN"):
        evaluate(y, np.array([1.0, np.nan, 1.0, 1.0]), np.zeros(4), "test")


def _set(n: int, labels: np.ndarray | None = None, columns=MODEL_FEATURES) -> TrainingSet:
    x = np.random.default_rng(0).uniform(50, 100, size=(n, len(columns)))
    y = np.full(n, 80_000.0) if labels is None else labels
    times = pd.Series([datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(n)])
    return TrainingSet(x, y, times, tuple(columns))


def test_bad_training_sets_are_refused_with_the_reason() -> None:
    with pytest.raises(TrainingRefused, match=f"at least {MIN_TRAINING_ROWS}"):
        usable(_set(50))
    nulls = np.full(500, 80_000.0)
    nulls[[3, 7]] = np.nan
    with pytest.raises(TrainingRefused, match="2 label"):
        usable(_set(500, nulls))
    absurd = np.full(500, 80_000.0)
    absurd[0] = 5.0  # won, not 만원
    with pytest.raises(TrainingRefused, match="outside 1,000–500,000만원"):
        usable(_set(500, absurd))
    with pytest.raises(TrainingRefused, match="lacks model feature"):
        usable(_set(500, columns=(*MODEL_FEATURES[1:], "extra")))
    no_area = _set(500)
    no_area.features[:10, AREA_AT] = np.nan  # implausible areas were left missing
    kept, dropped = usable(no_area)
    assert (len(kept), dropped) == (490, 10)


def test_debounce_waits_for_quiet_but_not_forever() -> None:
    t0 = datetime(2026, 11, 23, tzinfo=UTC)
    quiet, most = timedelta(seconds=30), timedelta(seconds=300)
    assert not is_due([], t0, quiet, most)
    assert not is_due([t0, t0 + timedelta(seconds=20)], t0 + timedelta(seconds=40), quiet, most)
    assert is_due([t0, t0 + timedelta(seconds=20)], t0 + timedelta(seconds=50), quiet, most)
    burst = [t0 + timedelta(seconds=s) for s in range(0, 300, 10)]  # never quiet
    assert is_due(burst, t0 + timedelta(seconds=300), quiet, most)


def test_naive_baseline_uses_only_the_complex_s_previous_three_months() -> None:
    t = pd.Timestamp("2026-03-01", tz="UTC")
    history = pd.DataFrame(
        {
            "complex_id": ["A", "A", "A", "A", "B"],
            "deal_time": [t - pd.Timedelta(days=d) for d in (10, 20, 200, -1, 5)],
            "price": [100_000.0, 120_000.0, 1.0, 9e9, 50_000.0],
            "area_sqm": [100.0, 100.0, 100.0, 100.0, 50.0],
        }
    )
    rows = pd.DataFrame({"complex_id": ["A", "C"], "deal_time": [t, t], "area_sqm": [50.0, 50.0]})
    out = naive_prices(history, rows)
    assert out[0] == pytest.approx(1_100.0 * 50) and np.isnan(out[1])


def test_a_custom_grid_is_one_tuple() -> None:
    fast = (Candidate("tiny", "lightgbm", 5, 0.3),)
    training = from_deals(synthetic_deals(600))
    split, _ = _split(training)
    (fitted,) = fit_grid(fast, split)
    assert fitted.model.flavor == "lightgbm" and fitted.trees <= 5
