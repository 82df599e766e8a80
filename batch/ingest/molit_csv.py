"""MOLIT real-transaction CSV exports (아파트 매매, 전월세), parsed as exported.

cp949, 15 preamble lines, the header on line 16, every field quoted, comma-thousands 만원,
``"-"`` for empty, 계약년월 (YYYYMM) plus 계약일 (DD), 해제사유발생일 set on cancelled deals.
A file is parsed whole or refused whole with :class:`MolitCsvError` naming what is wrong.
"""

from __future__ import annotations

import io
from typing import Literal

import pandas as pd

from batch.ingest.columns import CONTRACT_TYPES, DEAL_COLUMNS, DEAL_TYPES, LEASE_COLUMNS

Kind = Literal["trade", "rent"]
PREAMBLE_LINES = 15
ENCODING = "cp949"

REQUIRED_HEADERS: dict[Kind, tuple[str, ...]] = {
    "trade": ("시군구", "번지", "단지명", "전용면적(㎡)", "계약년월", "계약일", "거래금액(만원)",
              "층", "건축년도", "해제사유발생일", "거래유형"),
    "rent": ("시군구", "번지", "단지명", "전월세구분", "전용면적(㎡)", "계약년월", "계약일",
             "보증금(만원)", "월세금(만원)", "층", "건축년도", "계약기간", "계약구분"),
}  # fmt: skip

# 시군구 names in the exports → 5-digit codes. Extend when ingesting other regions.
SIGUNGU_CODES = {
    "경기도 성남시 수정구": "41131",
    "경기도 성남시 중원구": "41133",
    "경기도 성남시 분당구": "41135",
}


class MolitCsvError(ValueError):
    """The export cannot be loaded as a whole; the message says why."""


def _decode(payload: bytes) -> str:
    if not payload.strip():
        raise MolitCsvError("the file is empty")
    try:
        return payload.decode(ENCODING)
    except UnicodeDecodeError as exc:
        raise MolitCsvError(
            f"not {ENCODING} at byte {exc.start}: MOLIT exports are cp949 (EUC-KR); "
            "was the file re-saved in another encoding?"
        ) from exc


def _integers(series: pd.Series, name: str) -> pd.Series:
    cleaned = series.str.replace(",", "", regex=False).str.strip()
    numbers = pd.to_numeric(cleaned, errors="coerce")
    bad = numbers.isna() & cleaned.notna()
    if bad.any():
        rows = ", ".join(str(i + PREAMBLE_LINES + 2) for i in bad[bad].index[:5])
        raise MolitCsvError(f"{name}: not a number on line(s) {rows}")
    return numbers


def read_export(payload: bytes, kind: Kind) -> pd.DataFrame:
    """The export's rows in the English columns of :mod:`batch.ingest.columns`."""
    text = _decode(payload)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            skiprows=PREAMBLE_LINES,
            dtype=str,
            keep_default_na=False,
            na_values=["-", ""],
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise MolitCsvError(f"not a MOLIT export table: {exc}") from exc
    missing = [h for h in REQUIRED_HEADERS[kind] if h not in frame.columns]
    if missing:
        raise MolitCsvError(
            f"{kind} export lacks column(s) {', '.join(missing)} on line {PREAMBLE_LINES + 1}; "
            f"found: {', '.join(map(str, frame.columns[:8]))}…"
        )
    if frame.empty:
        raise MolitCsvError("the export has a header but no rows")

    sigungu = frame["시군구"].str.rsplit(n=1, expand=True)
    if sigungu.shape[1] != 2:
        raise MolitCsvError("시군구 is not '<시도> <시군구> <법정동>'")
    region = sigungu[0].map(SIGUNGU_CODES)
    if region.isna().any():
        unknown = sorted(set(sigungu[0][region.isna()].dropna()))[:3]
        raise MolitCsvError(f"unknown 시군구 {unknown}: add its code to SIGUNGU_CODES")
    ym = _integers(frame["계약년월"], "계약년월")
    day = _integers(frame["계약일"], "계약일")
    contract = pd.to_datetime(
        pd.DataFrame({"year": ym // 100, "month": ym % 100, "day": day}), errors="coerce"
    )
    if contract.isna().any():
        line = int(contract[contract.isna()].index[0]) + PREAMBLE_LINES + 2
        raise MolitCsvError(f"계약년월/계약일: impossible date on line {line}")

    out = pd.DataFrame(
        {
            "region_code": region,
            "dong": sigungu[1].str.strip(),
            "complex_name": frame["단지명"].str.strip(),
            "complex_key": None,
            "jibun": frame["번지"].str.strip(),
            "area_sqm": _integers(frame["전용면적(㎡)"], "전용면적(㎡)").astype(float),
            "floor": _integers(frame["층"], "층").astype("Int64"),
            "build_year": _integers(frame["건축년도"], "건축년도").astype("Int64"),
            "contract_date": contract.dt.date,
        }
    )
    if kind == "trade":
        cancel = pd.to_datetime(frame["해제사유발생일"], format="%Y%m%d", errors="coerce")
        cancel = cancel.where(frame["해제사유발생일"].notna())
        out["price"] = _integers(frame["거래금액(만원)"], "거래금액(만원)").astype("Int64")
        out["cancelled"] = frame["해제사유발생일"].notna()
        out["cancel_date"] = cancel.dt.date.where(cancel.notna(), None)
        out["deal_type"] = frame["거래유형"].map(DEAL_TYPES).where(frame["거래유형"].notna(), None)
        return out[list(DEAL_COLUMNS)]
    rent = _integers(frame["월세금(만원)"], "월세금(만원)").fillna(0).astype("Int64")
    out["deposit"] = _integers(frame["보증금(만원)"], "보증금(만원)").astype("Int64")
    out["monthly_rent"] = rent
    out["lease_type"] = frame["전월세구분"].map({"전세": "jeonse", "월세": "wolse"})
    out["contract_type"] = (
        frame["계약구분"].map(CONTRACT_TYPES).where(frame["계약구분"].notna(), None)
    )
    out["contract_term"] = frame["계약기간"]
    return out[list(LEASE_COLUMNS)]
