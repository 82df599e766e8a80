"""Ingest every 성남시 MOLIT export (≈ 60k sale and lease rows) from CSV into PostgreSQL.

Prints rows/s per stage (parse+snapshot, validate, clean, load) and end to end. Runs on
the local stack, or on the services given by HOMELOOP_* URLs.

    .venv/bin/python benchmarks/ingest_exports.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batch.ingest.pipeline import ingest_frame  # noqa: E402
from batch.ingest.sources import fetch_csv_export  # noqa: E402
from homeloop.settings import Settings  # noqa: E402
from homeloop.stack import LocalStack, provision  # noqa: E402

EXPORTS = ROOT / "tests" / "fixtures" / "molit" / "csv_export"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="homeloop-ingest-bench-"))
    base = Settings(environment="test", data_dir=work, db_schema="bench_ingest")
    with LocalStack(base, work / "stack") as settings:
        provision(settings, apply_features=False)
        seconds: dict[str, float] = defaultdict(float)
        rows: dict[str, int] = defaultdict(int)
        started = time.perf_counter()
        for path in sorted(EXPORTS.glob("apt_*.csv")):
            t0 = time.perf_counter()
            fetched = fetch_csv_export(path, settings.raw_root)
            seconds["parse+snapshot"] += time.perf_counter() - t0
            rows["parse+snapshot"] += len(fetched.frame)
            result = ingest_frame(settings, fetched.frame, fetched.kind, fetched.source)
            assert result.status == "loaded", result.report
            for stage, s in result.stage_seconds.items():
                seconds[stage] += s
                rows[stage] += result.rows["loaded"] if stage == "load" else len(fetched.frame)
            rows["loaded"] += result.rows["loaded"]
        total = time.perf_counter() - started
        print(f"{rows['parse+snapshot']:,} rows read, {rows['loaded']:,} loaded in {total:.2f} s")
        for stage in ("parse+snapshot", "validate", "clean", "load"):
            rate = rows[stage] / seconds[stage]
            print(f"  {stage:<15} {seconds[stage]:6.2f} s  {rate:>10,.0f} rows/s")
        print(
            f"  {'end to end':<15} {total:6.2f} s  {rows['parse+snapshot'] / total:>10,.0f} rows/s"
        )


if __name__ == "__main__":
    main()
