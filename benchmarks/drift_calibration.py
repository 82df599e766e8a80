"""Drift-monitor figures: calibrated thresholds against fixed cut-offs, and residual detectors.

A simulated history is split at random into a training set and live traffic (so live rows
come from the same distribution, without being the rows the thresholds were calibrated on);
a quick XGBoost model on the training set gives the prediction column, the importances and
the validation residuals. Then:

1. calibration time of :class:`homeloop.drift.DriftMonitor` (every model column, a 20k-row
   sample) per window size;
2. one month of stationary traffic at ``--rate`` predictions a second in windows of
   ``--window`` rows: false alarms of the calibrated monitor next to "PSI > 0.1" (any
   model input or the prediction, on the reference bins) and "KS p < 0.05" (any
   continuous one); and how many windows each needs to see +5% on the most important
   continuous feature (predictions recomputed);
3. residual change detection: events from a step (+20%, +10% on the contract price) to the
   alarm, river's ADWIN at defaults against the calibrated Page-Hinkley, averaged over
   seeds, at our residual scale and at a noisier one; false alarms over stationary months.

Prints its numbers; no assertions.

    .venv/bin/python benchmarks/drift_calibration.py [--rate 1] [--window 2000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batch.dataset import from_deals  # noqa: E402
from homeloop.drift import (  # noqa: E402
    PREDICTION,
    DriftConfig,
    DriftMonitor,
    ResidualConfig,
    ResidualMonitor,
    bin_counts,
    psi,
)
from homeloop.market import Market, deal_history  # noqa: E402
from homeloop.reference import build_reference  # noqa: E402

DEALS = 240_000
TRAIN = 100_000
MONTH_S = 30 * 86_400


def simulated() -> tuple[pd.DataFrame, np.ndarray]:
    """Feature rows (model columns) and prices of one simulated two-year history, shuffled."""
    market = Market(seed=42)
    deals = deal_history(market, DEALS, market.start - timedelta(days=730), market.start, seed=1)
    training = from_deals(deals.drop(columns=["true_price"]))
    order = np.random.default_rng(0).permutation(len(training))
    frame = pd.DataFrame(training.features[order], columns=list(training.columns))
    return frame, training.labels[order]


def fit(frame: pd.DataFrame, prices: np.ndarray):  # xgboost's own types
    import xgboost as xgb

    model = xgb.XGBRegressor(n_estimators=150, max_depth=7, learning_rate=0.1, n_jobs=1)
    model.fit(frame.to_numpy(), np.log(prices))
    gains = model.get_booster().get_score(importance_type="total_gain")
    total = sum(gains.values())
    importance = {frame.columns[int(k[1:])]: v / total for k, v in gains.items()}
    return model, importance


def reference_shares(column: dict) -> np.ndarray:
    shares = np.asarray(column["shares"]) * (1 - column["missing_share"])
    return np.append(shares, column["missing_share"])


def input_drift(args: argparse.Namespace) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    frame, prices = simulated()
    train, live = frame.iloc[:TRAIN], frame.iloc[TRAIN:]
    model, importance = fit(train, prices[:TRAIN])
    predict = lambda rows: np.exp(model.predict(rows.to_numpy()))  # noqa: E731
    reference = train.assign(**{PREDICTION: predict(train)})
    summary, sample = build_reference(reference)
    summary["importance"] = importance
    held_out = live.iloc[:20_000]
    residuals = prices[TRAIN : TRAIN + 20_000] / predict(held_out) - 1
    live_rows = live.assign(**{PREDICTION: predict(live)})
    print(f"simulated {DEALS:,} deals, fitted the model in {time.perf_counter() - t0:.0f} s; "
          f"{len(importance)} of {train.shape[1]} features used; relative residual std "
          f"{residuals.std():.3f}")  # fmt: skip

    print("\n1. calibration (one core, every model column and the prediction, 20k sample)")
    for window in (1000, 2000, 5000):
        t0 = time.perf_counter()
        monitor = DriftMonitor(summary, sample, DriftConfig(window, args.rate))
        print(f"   window {window:>5}: {time.perf_counter() - t0:.2f} s, "
              f"alpha {monitor.alpha:.1e} per column per window")  # fmt: skip

    config = DriftConfig(args.window, args.rate)
    monitor = DriftMonitor(summary, sample, config)
    alarming = [c for c in monitor.columns if c.importance > 0]
    print(f"\n2. stationary traffic at {args.rate:g}/s, {len(alarming)} alarming columns of "
          f"{len(monitor.columns)}; false alarms (budget 1 a month)")  # fmt: skip
    rng = np.random.default_rng(5)
    for window, share in ((args.window, 1.0), (250, 0.1)):
        checks = stationary(summary, sample, DriftConfig(window, args.rate), live_rows, rng, share)
        print(f"   windows of {window:>5,}: {checks}")

    continuous = [c for c in alarming if c.kind == "continuous" and c.name != PREDICTION]
    target = max(continuous, key=lambda c: c.importance)
    print(f"   a shift of {target.name} (importance {target.importance:.2f}), predictions "
          f"recomputed; windows of {args.window:,} until the first alarm (of 10):")  # fmt: skip
    columns = list(live_rows.columns)
    for factor in (1.02, 1.05):
        shifted = live.copy()
        shifted[target.name] *= factor
        shifted[PREDICTION] = predict(shifted)
        rows_pool = shifted[columns].to_numpy()
        monitor = DriftMonitor(summary, sample, config)
        first: dict[str, int | None] = {"calibrated": None, "PSI > 0.1": None}
        for i in range(10):
            rows = rows_pool[rng.integers(0, len(rows_pool), args.window)]
            (report,) = monitor.feed(rows, columns)
            psis = [psi(reference_shares(summary["summary"][c.name]),
                        bin_counts(rows[:, columns.index(c.name)],
                                   summary["summary"][c.name]["edges"]))
                    for c in alarming]  # fmt: skip
            for rule, fired in (("calibrated", report.drifted), ("PSI > 0.1", max(psis) > 0.1)):
                if fired and first[rule] is None:
                    first[rule] = i + 1
        top = ", ".join(f"{c.name} {c.ratio:.1f}×" for c in report.top(3))
        cells = ", ".join(f"{k} {v or '>10'}" for k, v in first.items())
        print(f"     ×{factor}: {cells}; last window's top {top}, score {report.score:.2f}")
    return residuals, float(residuals.std())


def stationary(
    summary: dict,
    sample: pd.DataFrame,
    config: DriftConfig,
    live_rows: pd.DataFrame,
    rng: np.random.Generator,
    share: float,
) -> str:
    """False alarms over ``share`` of a month of windows drawn from the live rows."""
    monitor = DriftMonitor(summary, sample, config)
    alarming = [c for c in monitor.columns if c.importance > 0]
    pool, columns = live_rows.to_numpy(), list(live_rows.columns)
    windows = round(config.checks_per_month * share)
    n_eff = config.window_size * len(sample) / (config.window_size + len(sample))
    t0 = time.perf_counter()
    calibrated = fixed_psi = fixed_ks = 0
    skew: set[str] = set()
    for _ in range(windows):
        rows = pool[rng.integers(0, len(pool), config.window_size)]
        (report,) = monitor.feed(rows, columns)
        calibrated += report.drifted
        psis = [psi(reference_shares(summary["summary"][c.name]),
                    bin_counts(rows[:, columns.index(c.name)], summary["summary"][c.name]["edges"]))
                for c in alarming]  # fmt: skip
        fixed_psi += max(psis) > 0.1
        d = [c.value for c in (*report.features, report.prediction) if c and c.alarming and
             c.statistic == "ks"]  # fmt: skip
        fixed_ks += min(kstwobign_sf(x * math.sqrt(n_eff)) for x in d) < 0.05
        skew |= {c.name for c in report.features if c.drifted and not c.alarming}
    ms = (time.perf_counter() - t0) / windows * 1000
    span = "a month" if share == 1 else f"{share:.0%} of a month"
    note = f"; over threshold, not alarming: {', '.join(sorted(skew))}" if skew else ""
    return (f"{windows:,} windows ({span}): calibrated {calibrated}, PSI > 0.1 {fixed_psi}, "
            f"KS p < 0.05 {fixed_ks}  ({ms:.0f} ms a window{note})")  # fmt: skip


def kstwobign_sf(x: float) -> float:
    from scipy import stats

    return float(stats.kstwobign.sf(x))


def residual_stream(pool: np.ndarray, rng: np.random.Generator, n: int, step: float) -> np.ndarray:
    """Residuals resampled from validation, prices ``step`` higher from event 1,000 on."""
    x = pool[rng.integers(0, pool.size, n)]
    x[1000:] = (1 + x[1000:]) * (1 + step) - 1
    return x


def delay(update: Callable[[float], bool], x: np.ndarray) -> tuple[int, int]:
    """Events from the step (event 1,000) to the first alarm after it, and alarms before it."""
    early = 0
    for i, v in enumerate(x):
        if update(float(v)):
            if i >= 1000:
                return i - 999, early
            early += 1
    return len(x), early


def residual_detection(residuals: np.ndarray, seeds: int) -> None:
    from river import drift

    events_per_month = 20_000
    print(f"\n3. residual change ({events_per_month:,} contracts a month, 'all' + region "
          f"segments, 1 false alarm a month); delay = events from the step to the alarm, "
          f"mean over {seeds} seeds")  # fmt: skip
    for label, pool in (("our residuals", residuals), ("noisier (×8)", residuals * 8)):
        scale = float(pool.std())
        config = ResidualConfig(scale=scale, events_per_month=events_per_month)
        print(f"   {label}, std {scale:.3f}:")
        for step in (0.2, 0.1):
            delays: dict[str, list[float]] = {"ADWIN defaults": [], "Page-Hinkley calibrated": []}
            early = dict.fromkeys(delays, 0)
            for seed in range(seeds):
                x = residual_stream(pool, np.random.default_rng(seed), 6000, step)
                adwin = drift.ADWIN()

                def adwin_update(v: float, adwin: drift.ADWIN = adwin) -> bool:
                    adwin.update(v)
                    return adwin.drift_detected

                monitor = ResidualMonitor(config, residuals=pool)

                def ph_update(v: float, monitor: ResidualMonitor = monitor) -> bool:
                    return bool(monitor.update(v))

                for name, update in (("ADWIN defaults", adwin_update),
                                     ("Page-Hinkley calibrated", ph_update)):  # fmt: skip
                    steps, before = delay(update, x)
                    delays[name].append(steps)
                    early[name] += before
            cells = "   ".join(
                f"{k} mean {np.mean(v):5.0f} median {np.median(v):5.0f}" for k, v in delays.items()
            )
            print(f"     +{step:.0%} step: {cells}   (false alarms before the step: "
                  f"{', '.join(f'{v}' for v in early.values())})")  # fmt: skip

        rng = np.random.default_rng(99)
        months = 5
        n = events_per_month * months
        x = pool[rng.integers(0, pool.size, n)]
        regions = rng.choice(["41131", "41133", "41135"], n)
        monitor = ResidualMonitor(config, residuals=pool)
        pairs = zip(x, regions, strict=True)
        ours = sum(len(monitor.update(float(v), ("all", r))) for v, r in pairs)
        adwin = drift.ADWIN()
        theirs = 0
        for v in x:
            adwin.update(float(v))
            theirs += adwin.drift_detected
        print(f"     stationary {months} months ({n:,} events): false alarms Page-Hinkley "
              f"{ours} (budget {months}), ADWIN defaults on 'all' {theirs}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1.0, help="predictions a second")
    parser.add_argument("--window", type=int, default=2000, help="rows a window")
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    t0 = time.perf_counter()
    residuals, _ = input_drift(args)
    residual_detection(residuals, args.seeds)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
