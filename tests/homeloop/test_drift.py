"""Drift statistics, calibrated thresholds and the two monitors, on synthetic populations."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from river import drift as river_drift
from scipy import stats

from homeloop.drift import (
    PREDICTION,
    ColumnDrift,
    DriftConfig,
    DriftMonitor,
    DriftReport,
    ResidualConfig,
    ResidualMonitor,
    _ks_of_ids,
    _ks_sorted,
    _wasserstein_sorted,
    adjustment_coefficient,
    bin_counts,
    category_counts,
    column_kind,
    cusum_arl,
    cusum_threshold,
    ks_statistic,
    page_hinkley,
    psi,
    relative_residual,
    tail_quantile,
    wasserstein,
)
from homeloop.reference import build_reference

IMPORTANCE = {"level": 0.5, "area": 0.3, "floor": 0.15, "kind": 0.05}  # clicks: unused
WINDOW = 250
CHECKS_PER_MONTH = 200


def population(
    n: int, seed: int, *, level_shift: float = 1.0, clicks: bool = False, area_missing: float = 0.02
) -> pd.DataFrame:
    """The generating distribution: two continuous features, an integer one, a categorical
    one, an engagement count missing in training, and a prediction made of them."""
    rng = np.random.default_rng(seed)
    area = rng.lognormal(4.4, 0.3, n)
    level = rng.lognormal(7.0, 0.1, n) * level_shift
    frame = pd.DataFrame(
        {
            "area": np.where(rng.random(n) < area_missing, np.nan, area),
            "level": level,
            "floor": rng.integers(1, 36, n).astype(float),
            "kind": rng.choice([0.0, 1.0, 2.0], n, p=[0.6, 0.3, 0.1]),
            "clicks": rng.poisson(3.0, n).astype(float) if clicks else np.full(n, np.nan),
        }
    )
    frame[PREDICTION] = level * area * rng.lognormal(0, 0.05, n)
    return frame


@pytest.fixture(scope="module")
def reference() -> tuple[dict, pd.DataFrame]:
    summary, sample = build_reference(population(40_000, seed=1), sample_rows=5_000)
    return {**summary, "importance": IMPORTANCE}, sample


@pytest.fixture(scope="module")
def config() -> DriftConfig:
    rate = CHECKS_PER_MONTH * WINDOW / (30 * 86_400)
    return DriftConfig(window_size=WINDOW, rate_per_s=rate, resamples=1000, seed=3)


@pytest.fixture(scope="module")
def monitor(reference: tuple[dict, pd.DataFrame], config: DriftConfig) -> DriftMonitor:
    return DriftMonitor(*reference, config)


def feed_all(monitor: DriftMonitor, frame: pd.DataFrame) -> list[DriftReport]:
    return monitor.feed(frame.to_numpy(), list(frame.columns))


# --- distances -------------------------------------------------------------------------------


def test_psi_is_zero_for_identical_shares_and_grows_with_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=50_000)
    edges = list(np.quantile(ref, np.linspace(0, 1, 11)))
    shares = bin_counts(ref, edges) / ref.size
    assert psi(shares, shares * 1000) == pytest.approx(0.0, abs=1e-12)
    values = [psi(shares, bin_counts(rng.normal(s, 1, 5000), edges)) for s in (0.0, 0.1, 0.3, 1.0)]
    assert values == sorted(values)
    assert values[0] < 0.01 < values[2]


def test_psi_counts_a_change_in_the_missing_share() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=50_000)
    edges = list(np.quantile(ref, np.linspace(0, 1, 11)))
    shares = bin_counts(ref, edges) / ref.size
    assert shares[-1] == 0

    def with_missing(share: float) -> float:
        live = rng.normal(size=5000)
        live[: int(share * live.size)] = np.nan
        return psi(shares, bin_counts(live, edges))

    assert with_missing(0.0) < with_missing(0.05) < with_missing(0.3)
    assert with_missing(0.05) > 0.1


def test_psi_is_finite_on_empty_bins_and_vectorised() -> None:
    shares = np.array([0.5, 0.5, 0.0])
    one = psi(shares, [10, 0, 0])
    assert math.isfinite(one) and one > 0
    many = psi(shares, np.array([[10, 0, 0], [5, 5, 0], [0, 0, 10]]))
    assert many.shape == (3,)
    assert many[0] == pytest.approx(one) and many[1] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_fast_kernels_equal_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    digits = seed % 3  # ties within and across the two samples
    ref = np.round(rng.normal(size=3000), digits)
    ref[rng.random(ref.size) < 0.02] = np.nan
    live = np.round(rng.normal(0.1 * seed, 1 + 0.2 * seed, 400), digits + 1)
    live[rng.random(live.size) < 0.1 * seed] = np.nan
    ordered = np.sort(np.where(np.isnan(ref), -np.inf, ref))
    uniq, counts = np.unique(ordered, return_counts=True)
    live_filled = np.where(np.isnan(live), -np.inf, live)
    assert _ks_sorted(ordered, live_filled) == pytest.approx(ks_statistic(ref, live), abs=1e-12)
    ids = rng.integers(0, uniq.size, size=(5, 300))
    expected = [stats.ks_2samp(uniq[row], ordered).statistic for row in ids]
    assert np.allclose(_ks_of_ids(ids, np.cumsum(counts)), expected, atol=1e-12)
    present, window = np.sort(ref[~np.isnan(ref)]), np.sort(live[~np.isnan(live)])
    assert _wasserstein_sorted(present, window) == pytest.approx(
        stats.wasserstein_distance(window, present), rel=1e-9
    )
    assert wasserstein(ref, live, scale=2.0) == pytest.approx(
        stats.wasserstein_distance(window, present) / 2.0
    )


def test_category_counts_match_values_up_to_rounding() -> None:
    cats = np.array([0.0, 0.1, 0.3])
    values = [0.1 + 1e-15, 0.1 - 1e-15, 0.30000000000000004, 0.0, 0.2, np.nan, 5.0]
    assert category_counts(values, cats).tolist() == [1, 2, 1, 2, 1]
    assert category_counts([1.0, np.nan], []).tolist() == [1, 1]


def test_column_kind_bins_few_values_and_integers() -> None:
    rng = np.random.default_rng(0)
    assert column_kind(rng.choice([0.1, 0.25, 0.4], 1000)) == "binned"
    assert column_kind(rng.integers(0, 500, 1000).astype(float)) == "binned"
    assert column_kind(np.full(100, np.nan)) == "binned"
    assert column_kind(rng.normal(size=1000)) == "continuous"


def test_exponential_tail_extrapolates_far_beyond_the_resamples() -> None:
    rng = np.random.default_rng(0)
    null = rng.exponential(2.0, 1000)
    alpha = 1e-5
    assert tail_quantile(null, alpha) == pytest.approx(-2.0 * math.log(alpha), rel=0.15)
    assert tail_quantile(null, 0.2) == pytest.approx(np.quantile(null, 0.8))


# --- calibration -----------------------------------------------------------------------------


def test_alpha_is_the_monthly_budget_split_over_checks_and_alarming_columns(
    monitor: DriftMonitor, config: DriftConfig
) -> None:
    assert config.checks_per_month == pytest.approx(CHECKS_PER_MONTH)
    alarming = len(IMPORTANCE) + 1  # the prediction column alarms too; clicks cannot
    assert monitor.alpha == pytest.approx(1.0 / (CHECKS_PER_MONTH * alarming))
    assert monitor.kinds == {
        "area": "continuous",
        "level": "continuous",
        "floor": "binned",
        "kind": "binned",
        "clicks": "binned",
        PREDICTION: "continuous",
    }


def test_calibration_holds_on_a_stationary_stream_where_fixed_cutoffs_fire(
    reference: tuple[dict, pd.DataFrame], monitor: DriftMonitor
) -> None:
    """Ten months of windows drawn afresh from the generating distribution (not from the
    sample the thresholds came from): about the budget of false alarms, while the
    textbook cut-offs, PSI > 0.1 on the reference bins or KS p < 0.05, fire on the same
    windows several times and dozens of times as often."""
    summary, sample = reference
    months = 10
    live = population(WINDOW * CHECKS_PER_MONTH * months, seed=2)
    reports = feed_all(monitor, live)
    assert len(reports) == CHECKS_PER_MONTH * months
    false_alarms = sum(r.drifted for r in reports)
    assert false_alarms <= 1.5 * months

    alarming = [*IMPORTANCE, PREDICTION]
    windows = live[alarming].to_numpy().reshape(len(reports), WINDOW, len(alarming))
    shares = {
        name: np.append(
            np.asarray(summary["summary"][name]["shares"])
            * (1 - summary["summary"][name]["missing_share"]),
            summary["summary"][name]["missing_share"],
        )
        for name in alarming
    }
    psi_alarms = sum(
        max(
            psi(shares[name], bin_counts(w[:, j], summary["summary"][name]["edges"]))
            for j, name in enumerate(alarming)
        )
        > 0.1
        for w in windows
    )
    # the asymptotic two-sample KS p-value of each window's D against the whole sample
    ks_alarms = 0
    for report in reports:
        pvalues = [
            stats.kstwobign.sf(c.value * math.sqrt(WINDOW * len(sample) / (WINDOW + len(sample))))
            for c in (*report.features, report.prediction)
            if c is not None and c.statistic == "ks"
        ]
        ks_alarms += min(pvalues) < 0.05
    assert psi_alarms > 2 * max(false_alarms, months)  # ~4 a month at this window size
    assert ks_alarms > 10 * max(false_alarms, months)  # ~20 a month


def test_a_five_percent_shift_on_an_important_feature_is_caught_within_a_few_windows(
    reference: tuple[dict, pd.DataFrame], config: DriftConfig
) -> None:
    monitor = DriftMonitor(*reference, config)
    reports = feed_all(monitor, population(WINDOW * 4, seed=5, level_shift=1.05))
    assert any(r.drifted for r in reports)
    first = next(r for r in reports if r.drifted)
    assert first.window <= 1
    assert first.top(1)[0].name == "level"
    by_name = {c.name: c for c in first.features}
    assert by_name["level"].drifted and by_name["level"].statistic == "ks"
    assert by_name["level"].wasserstein is not None and by_name["level"].wasserstein > 0.3


def test_a_missing_share_change_on_a_continuous_feature_is_caught(
    reference: tuple[dict, pd.DataFrame], config: DriftConfig
) -> None:
    monitor = DriftMonitor(*reference, config)
    (report,) = feed_all(monitor, population(WINDOW, seed=6, area_missing=0.25))
    area = next(c for c in report.features if c.name == "area")
    assert area.drifted and report.drifted
    assert area.missing_share == pytest.approx(0.25, abs=0.06)


def test_a_zero_importance_feature_is_reported_but_never_alarms(
    reference: tuple[dict, pd.DataFrame], config: DriftConfig
) -> None:
    monitor = DriftMonitor(*reference, config)
    reports = feed_all(monitor, population(WINDOW * 3, seed=7, clicks=True))
    for report in reports:
        clicks = next(c for c in report.features if c.name == "clicks")
        assert clicks.drifted and clicks.ratio > 10
        assert not clicks.alarming and clicks.importance == 0
        assert not report.drifted
        assert clicks not in report.top(3)


def test_a_context_column_is_reported_but_neither_alarms_nor_scores(
    reference: tuple[dict, pd.DataFrame], config: DriftConfig
) -> None:
    shifted = population(WINDOW * 2, seed=5, level_shift=1.05)
    watched = feed_all(DriftMonitor(*reference, config), shifted)
    context = feed_all(DriftMonitor(*reference, config, context=["level"]), shifted)
    for alarm, quiet in zip(watched, context, strict=True):
        level = next(c for c in quiet.features if c.name == "level")
        assert level.drifted and not level.alarming and level.weighted == 0
        assert quiet.score < alarm.score
    assert any(r.drifted for r in watched) and not any(r.drifted for r in context)


def test_feed_accepts_any_batches_and_column_order(
    reference: tuple[dict, pd.DataFrame], config: DriftConfig
) -> None:
    live = population(WINDOW * 2 + 17, seed=8)
    whole = feed_all(DriftMonitor(*reference, config), live)
    monitor = DriftMonitor(*reference, config)
    shuffled = live[list(reversed(live.columns))].assign(unknown=1.0)
    pieces = []
    for start, stop in [(0, 1), (1, 300), (300, 301), (301, len(live))]:
        pieces += feed_all(monitor, shuffled.iloc[start:stop])
    assert [r.to_dict() for r in pieces] == [r.to_dict() for r in whole]
    assert json.loads(json.dumps(pieces[0].to_dict()))["rows"] == WINDOW
    assert [r.window for r in pieces] == [0, 1]
    assert feed_all(monitor, live.iloc[:WINDOW])[0].window == 2  # the 17 left over counted


def test_a_reference_column_absent_from_live_is_all_missing(
    reference: tuple[dict, pd.DataFrame], config: DriftConfig
) -> None:
    monitor = DriftMonitor(*reference, config)
    (report,) = feed_all(monitor, population(WINDOW, seed=9).drop(columns=["floor"]))
    floor = next(c for c in report.features if c.name == "floor")
    assert floor.missing_share == 1.0 and floor.drifted and report.drifted


def test_score_is_importance_weighted_and_top_orders_by_it() -> None:
    def column(name: str, ratio: float, importance: float) -> ColumnDrift:
        return ColumnDrift(name, "continuous", "ks", ratio * 0.1, 0.1, ratio, importance,
                           importance > 0, ratio > 1, 0.0, None)  # fmt: skip

    quiet = DriftReport(0, 100, (column("a", 0.0, 0.7), column("b", 0.0, 0.3)), None)
    assert quiet.score == 0 and not quiet.drifted
    at_threshold = DriftReport(0, 100, (column("a", 1.0, 0.7), column("b", 1.0, 0.3)), None)
    assert at_threshold.score == pytest.approx(1.0)
    report = DriftReport(
        0,
        100,
        (
            column("a", 2.0, 0.7),
            column("b", 4.0, 0.2),
            column("c", 100.0, 0.1),
            column("d", 50.0, 0.0),
        ),
        column(PREDICTION, 0.5, 1.0),
    )
    assert report.score == pytest.approx(0.7 * 2 + 0.2 * 3 + 0.1 * 3)  # ratios capped at 3
    assert [c.name for c in report.top(3)] == ["a", "b", "c"]
    assert report.drifted
    assert json.loads(json.dumps(report.to_dict()))["prediction"]["name"] == PREDICTION


# --- residual change -------------------------------------------------------------------------


def test_cusum_threshold_inverts_the_run_length() -> None:
    for k in (0.1, 0.5, 1.5):
        h = cusum_threshold(k, 10_000)
        assert cusum_arl(k, h) == pytest.approx(10_000, rel=1e-4)
        assert cusum_threshold(k, 100_000) > h
    assert adjustment_coefficient(np.random.default_rng(0).normal(size=200_000), 0.5) == (
        pytest.approx(1.0, rel=0.05)
    )
    heavy = np.clip(np.random.default_rng(0).standard_t(3, 200_000) / math.sqrt(3), -4, 4)
    assert adjustment_coefficient(heavy / heavy.std(), 0.5) < 0.95


def stream(seed: int, scale: float, before: int, after: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, scale, before), rng.normal(shift, scale, after)])


def test_residual_monitor_raises_no_false_alarm_over_a_stationary_month() -> None:
    config = ResidualConfig(scale=0.3, events_per_month=20_000)
    monitor = ResidualMonitor(config)
    rng = np.random.default_rng(11)
    regions = rng.choice(["41135", "41131", "41133", "41130"], 20_000)
    found = []
    for x, region in zip(stream(11, 0.3, 20_000, 0, 0.0), regions, strict=True):
        found += monitor.update(x, ("all", region))
    assert found == []


@pytest.mark.parametrize("shift", [0.2, 0.1])
def test_residual_step_is_caught_sooner_than_adwin_at_defaults(shift: float) -> None:
    scale, before = 0.3, 1000
    config = ResidualConfig(scale=scale, events_per_month=20_000)
    ours, adwin = [], []
    for seed in range(5):
        x = stream(seed, scale, before, 4000, shift)
        monitor = ResidualMonitor(config)
        hits = [(i, e) for i, v in enumerate(x) for e in monitor.update(v)]
        assert hits and hits[0][0] >= before  # nothing before the step
        index, event = hits[0]
        ours.append(index - before + 1)
        assert event.segment == "all" and event.detector == "page_hinkley"
        assert event.before == pytest.approx(0.0, abs=0.06)
        assert event.after == pytest.approx(shift, abs=0.15)
        detector = river_drift.ADWIN()
        for i, v in enumerate(x):
            detector.update(v)
            if detector.drift_detected and i >= before:
                adwin.append(i - before + 1)
                break
    assert np.mean(ours) < np.mean(adwin)


def test_page_hinkley_threshold_follows_the_budget_and_the_residual_tails() -> None:
    config = ResidualConfig(scale=0.1, events_per_month=10_000)
    base = page_hinkley(config).threshold
    assert page_hinkley(config, detectors=3).threshold > base
    strict = ResidualConfig(scale=0.1, events_per_month=10_000, false_alarms_per_month=0.1)
    assert page_hinkley(strict).threshold > base
    heavy = np.random.default_rng(0).standard_t(3, 50_000) * 0.1 / math.sqrt(3)
    assert page_hinkley(config, residuals=heavy).threshold > base
    assert relative_residual(120_000, 100_000) == pytest.approx(0.2)
