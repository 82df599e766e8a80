"""Derive the market simulator's calibration table from MOLIT apartment-sale CSV exports.

One-off and reproducible: ``python scripts/derive_calibration.py EXPORT_DIR OUT_CSV``,
where EXPORT_DIR holds ``apt_trade_*.csv`` as the MOLIT export system writes them (cp949,
15 preamble lines, quoted fields, comma-thousands 만원, "-" for empty). Cancelled deals
(해제사유발생일 set) are left out. Nothing at run time reads the exports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

# 시군구 name → 5-digit code (LAWD_CD) of the three 구 of 성남시.
REGION_CODES = {"수정구": "41131", "중원구": "41133", "분당구": "41135"}
MIN_DEALS = 5
PER_REGION = {"41135": 70, "41131": 40, "41133": 40}


def read_export(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, encoding="cp949", skiprows=15, dtype=str, na_values=["-"])
    frame = frame[frame["해제사유발생일"].isna()]
    parts = frame["시군구"].str.split()
    return pd.DataFrame(
        {
            "region_code": parts.str[2].map(REGION_CODES),
            "dong": parts.str[3],
            "complex_name": frame["단지명"].str.strip(),
            "area_sqm": frame["전용면적(㎡)"].astype(float),
            "price": frame["거래금액(만원)"].str.replace(",", "").astype(int),
            "floor": frame["층"].astype(int),
            "build_year": frame["건축년도"].astype(int),
        }
    )


def derive(export_dir: Path) -> pd.DataFrame:
    deals = pd.concat([read_export(p) for p in sorted(export_dir.glob("apt_trade_*.csv"))])
    deals["ppsqm"] = deals["price"] / deals["area_sqm"]
    groups = deals.groupby(["region_code", "dong", "complex_name"])
    table = groups.agg(
        build_year=("build_year", "median"),
        price_per_sqm=("ppsqm", "median"),
        log_ppsqm_std=("ppsqm", lambda s: float(np.std(np.log(s)))),
        deals=("price", "size"),
        area_median=("area_sqm", "median"),
        area_min=("area_sqm", "min"),
        area_max=("area_sqm", "max"),
        max_floor=("floor", "max"),
    ).reset_index()
    table = table[table["deals"] >= MIN_DEALS]
    table = pd.concat(
        [table[table["region_code"] == code].nlargest(n, "deals") for code, n in PER_REGION.items()]
    ).sort_values(["region_code", "dong", "complex_name"])
    table["build_year"] = table["build_year"].round().astype(int)
    table["max_floor"] = table["max_floor"].clip(lower=5)
    return table.round(
        {"price_per_sqm": 1, "log_ppsqm_std": 4, "area_median": 2, "area_min": 2, "area_max": 2}
    )


def main() -> None:
    export_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    derive(export_dir).to_csv(out, index=False)


if __name__ == "__main__":
    main()
