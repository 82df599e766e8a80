"""Training figures: the whole candidate grid on 100k and 1M simulated rows, and real data.

For each size, in its own process (so peak memory is that size's): simulate the deals,
build the training set (the same formulas as the feature store's point-in-time join),
fit the grid in parallel, test every candidate, and report seconds, peak RSS and the test
MAE next to the simulator's noise floor. Then the real 성남 exports: the chosen candidate's
MAE and MAPE next to the naive per-complex baseline. Prints its numbers; no assertions.

    .venv/bin/python benchmarks/training.py [--rows 100000 1000000] [--sequential]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batch.candidates import GRID  # noqa: E402
from batch.dataset import TrainingSet, from_deals, time_split  # noqa: E402
from batch.fitting import fit_grid, prepare  # noqa: E402

EXPORTS = ROOT / "tests" / "fixtures" / "molit" / "csv_export"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _grid(training: TrainingSet, workers: int | None) -> dict:
    train, val, test = time_split(len(training))
    t0 = time.perf_counter()
    fitted = fit_grid(GRID, prepare(training, train, val), workers=workers)
    seconds = time.perf_counter() - t0
    y = training.labels
    rows = []
    for f in fitted:
        val_mae = float(np.mean(np.abs(f.model.predict(training.features[val]) - y[val])))
        test_pred = f.model.predict(training.features[test])
        err = np.abs(test_pred - y[test])
        rows.append({"candidate": f.candidate.name, "trees": f.trees, "seconds": f.seconds,
                     "val_mae": val_mae, "test_mae": float(err.mean()),
                     "test_mape": float(np.mean(err / y[test]) * 100)})  # fmt: skip
    best = min(rows, key=lambda r: r["val_mae"])
    return {"grid_seconds": seconds, "candidates": rows, "chosen": best, "test": test}


def one_size(n: int, workers: int | None) -> dict:
    """Runs in a child process: one size, its own peak memory."""
    from homeloop.market import Market, deal_history
    from homeloop.market.history import lease_history

    market = Market(seed=42)
    since = market.start - timedelta(days=365 * 2)
    t0 = time.perf_counter()
    deals = deal_history(market, n, since, market.start, seed=1)
    deals = deals.sort_values("deal_time", kind="stable").reset_index(drop=True)
    leases = lease_history(market, n // 2, since, market.start, seed=1)
    simulate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    training = from_deals(deals.drop(columns=["true_price"]), leases)
    features_s = time.perf_counter() - t0
    result = _grid(training, workers)
    floor = market.noise_floor_mae(deals["true_price"].to_numpy()[result.pop("test")])
    return {"rows": n, "simulate_s": simulate_s, "features_s": features_s, **result,
            "noise_floor_mae": floor, "peak_rss_mb": _peak_mb()}  # fmt: skip


def real_data() -> dict:
    import pandas as pd

    from batch.baseline import against_naive
    from batch.ingest.molit_csv import read_export
    from batch.labels import from_exports

    trades = pd.concat(read_export(p.read_bytes(), "trade") for p in EXPORTS.glob("apt_trade_*"))
    rents = pd.concat(read_export(p.read_bytes(), "rent") for p in EXPORTS.glob("apt_rent_*"))
    deals, leases = from_exports(trades, rents)
    training = from_deals(deals, leases)
    train, val, test = time_split(len(training))
    fitted = fit_grid(GRID, prepare(training, train, val))
    y = training.labels
    best = min(
        fitted, key=lambda f: np.mean(np.abs(f.model.predict(training.features[val]) - y[val]))
    )
    assert training.rows is not None
    compared = against_naive(training.rows, y, best.model.predict(training.features[test]), test)
    window = (str(training.times.iloc[test.start].date()), str(training.times.iloc[-1].date()))
    return {
        "deals": len(training),
        "test_window": window,
        "chosen": best.candidate.name,
        **compared,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--sequential", action="store_true", help="also fit one candidate at a time, all cores"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_size(args.child, args.workers)))
        return

    print(f"grid: {', '.join(c.name for c in GRID)}")
    modes: list[tuple[str, int | None]] = [("parallel", None)]
    if args.sequential:
        modes.append(("sequential", 1))
    for n in args.rows:
        for mode, workers in modes:
            cmd = [sys.executable, __file__, "--child", str(n)]
            if workers:  # one candidate at a time, with every core
                cmd += ["--workers", str(workers)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            c = r["chosen"]
            print(
                f"\n{n:>9,} rows ({mode}): grid {r['grid_seconds']:.1f} s "
                f"(simulate {r['simulate_s']:.1f} s, features {r['features_s']:.1f} s), "
                f"peak RSS {r['peak_rss_mb']:,.0f} MB"
            )
            for row in r["candidates"]:
                print(
                    f"    {row['candidate']:<14} {row['trees']:>4} trees {row['seconds']:6.1f} s  "
                    f"val MAE {row['val_mae']:8,.0f}  test MAE {row['test_mae']:8,.0f}  "
                    f"MAPE {row['test_mape']:.2f}%"
                )
            print(
                f"    chosen {c['candidate']}: test MAE {c['test_mae']:,.0f}만원 = "
                f"{c['test_mae'] / r['noise_floor_mae']:.3f}x the noise floor "
                f"({r['noise_floor_mae']:,.0f}); goal <= 1.05x"
            )
    real = real_data()
    print(
        f"\nreal 성남 exports: {real['deals']:,} deals, test window {real['test_window'][0]}.."
        f"{real['test_window'][1]}, chosen {real['chosen']}; on the {real['rows']:,} test rows "
        f"the baseline covers ({real['coverage']:.0%}):\n"
        f"    model  MAE {real['model_mae']:8,.0f}만원  MAPE {real['model_mape']:.2f}%\n"
        f"    naive  MAE {real['naive_mae']:8,.0f}만원  MAPE {real['naive_mape']:.2f}%  "
        f"(median 만원/㎡ of the complex, previous 3 months, x area)\n"
        f"    ratio  MAE {real['model_mae'] / real['naive_mae']:.3f}  "
        f"MAPE {real['model_mape'] / real['naive_mape']:.3f}"
    )


if __name__ == "__main__":
    main()
