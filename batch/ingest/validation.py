"""Validation of a parsed batch before anything is loaded: schema, ranges, history, duplicates.

A batch passes whole or is quarantined whole. The report lists which rows failed which
check, so an operator can fix the source and load again; it is plain JSON-ready data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import pandas as pd
import pandera.pandas as pa

from homeloop.events import MAX_PRICE_MANWON, MIN_PRICE_MANWON

Kind = Literal["trade", "rent"]

MEAN_PRICE_TOLERANCE = 0.20  # batch mean price per ㎡ vs the region's recent history
MAX_DUPLICATE_SHARE = 0.10  # MOLIT has no deal ids: some identical rows are real (0.3-4.4%)
FIRST_MOLIT_YEAR = 2006  # the real-transaction reporting system starts in 2006

IDENTITY = (
    "region_code",
    "dong",
    "complex_name",
    "jibun",
    "area_sqm",
    "floor",
    "contract_date",
)
DEAL_IDENTITY = (*IDENTITY, "price")
LEASE_IDENTITY = (*IDENTITY, "deposit", "monthly_rent")


def _common_columns(today: date) -> dict[str, pa.Column]:
    return {
        "region_code": pa.Column(str, pa.Check.str_matches(r"^\d{5}$")),
        "dong": pa.Column(str, pa.Check.str_length(min_value=1)),
        "complex_name": pa.Column(str, pa.Check.str_length(min_value=1)),
        "area_sqm": pa.Column(float, pa.Check.in_range(5.0, 500.0)),
        "floor": pa.Column("Int64", pa.Check.in_range(-5, 120)),
        "build_year": pa.Column("Int64", pa.Check.in_range(1950, today.year + 3), nullable=True),
        "contract_date": pa.Column(
            object,
            pa.Check(
                lambda s: s.between(date(FIRST_MOLIT_YEAR, 1, 1), today),
                element_wise=False,
                name="contract_date_in_range",
                error=f"contract date between {FIRST_MOLIT_YEAR}-01-01 and today",
            ),
        ),
    }


def schema(kind: Kind, today: date) -> pa.DataFrameSchema:
    columns = _common_columns(today)
    if kind == "trade":
        columns["price"] = pa.Column("Int64", pa.Check.in_range(MIN_PRICE_MANWON, MAX_PRICE_MANWON))
        columns["cancelled"] = pa.Column(bool)
    else:
        columns["deposit"] = pa.Column("Int64", pa.Check.in_range(0, MAX_PRICE_MANWON))
        columns["monthly_rent"] = pa.Column("Int64", pa.Check.in_range(0, 5_000))
        columns["lease_type"] = pa.Column(str, pa.Check.isin(["jeonse", "wolse"]))
    return pa.DataFrameSchema(columns, strict=False, coerce=False)


@dataclass
class ValidationReport:
    """Whether a batch may be loaded, and if not, which rows failed which checks."""

    kind: Kind
    rows: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    batch_checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and all(c["passed"] for c in self.batch_checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rows": self.rows,
            "passed": self.passed,
            "failed_rows": len({f["row"] for f in self.failures if f["row"] is not None}),
            "failures": self.failures,
            "batch_checks": self.batch_checks,
        }


def price_per_sqm(frame: pd.DataFrame, kind: Kind) -> pd.Series:
    value = frame["price"] if kind == "trade" else frame["deposit"]
    return value.astype(float) / frame["area_sqm"]


def validate(
    frame: pd.DataFrame,
    kind: Kind,
    *,
    today: date,
    history: dict[str, float] | None = None,
) -> ValidationReport:
    """Check a batch; ``history`` is the recent mean 만원/㎡ per region (sales or 전세)."""
    report = ValidationReport(kind=kind, rows=len(frame))
    try:
        schema(kind, today).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        for case in cases.to_dict("records"):
            index = case.get("index")
            report.failures.append(
                {
                    "row": None if pd.isna(index) else int(index),
                    "column": case.get("column"),
                    "check": str(case.get("check")),
                    "value": None
                    if pd.isna(case.get("failure_case"))
                    else str(case["failure_case"]),
                }
            )
    identity = list(DEAL_IDENTITY if kind == "trade" else LEASE_IDENTITY)
    # A cancelled deal and its re-report share an identity: count duplicates among live rows.
    live = frame[~frame["cancelled"].astype(bool)] if kind == "trade" else frame
    share = float(live.duplicated(subset=identity).mean()) if len(live) else 0.0
    report.batch_checks.append(
        {
            "check": "duplicate_share",
            "value": round(share, 4),
            "threshold": MAX_DUPLICATE_SHARE,
            "passed": share <= MAX_DUPLICATE_SHARE,
        }
    )
    if history:
        sample = frame if kind == "trade" else frame[frame["lease_type"] == "jeonse"]
        sample = sample[~sample["cancelled"]] if kind == "trade" else sample
        means = price_per_sqm(sample, kind).groupby(sample["region_code"]).mean()
        for region, mean in means.items():
            past = history.get(str(region))
            if past is None or past <= 0:
                continue
            change = float(mean / past - 1.0)
            report.batch_checks.append(
                {
                    "check": "mean_price_per_sqm_vs_history",
                    "region_code": str(region),
                    "value": round(change, 4),
                    "threshold": MEAN_PRICE_TOLERANCE,
                    "passed": abs(change) <= MEAN_PRICE_TOLERANCE,
                }
            )
    return report
