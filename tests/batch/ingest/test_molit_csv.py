"""MOLIT CSV exports: the real files parse as they are; broken ones are refused whole."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from batch.ingest.columns import DEAL_COLUMNS, LEASE_COLUMNS
from batch.ingest.molit_csv import MolitCsvError, read_export

EXPORTS = Path(__file__).resolve().parents[2] / "fixtures" / "molit" / "csv_export"


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("apt_trade_bundang.csv", 6_018),
        ("apt_trade_sujeong.csv", 1_877),
        ("apt_trade_jungwon.csv", 1_863),
        ("apt_rent_bundang.csv", 17_190),
        ("apt_rent_sujeong.csv", 5_993),
        ("apt_rent_jungwon.csv", 3_175),
    ],
)
def test_real_exports_parse_completely(name: str, rows: int) -> None:
    kind = "rent" if "rent" in name else "trade"
    frame = read_export((EXPORTS / name).read_bytes(), kind)  # type: ignore[arg-type]
    assert len(frame) == rows
    assert tuple(frame.columns) == (DEAL_COLUMNS if kind == "trade" else LEASE_COLUMNS)
    assert frame["region_code"].isin({"41131", "41133", "41135"}).all()
    assert frame["area_sqm"].between(5, 400).all()


def test_trade_values() -> None:
    frame = read_export((EXPORTS / "apt_trade_bundang.csv").read_bytes(), "trade")
    first = frame.iloc[0]
    assert (first["dong"], first["complex_name"], first["price"]) == (
        "구미동",
        "까치마을(2단지)(주공)",
        78_000,
    )
    assert first["contract_date"] == date(2026, 5, 5) and first["deal_type"] == "direct"
    cancelled = frame[frame["cancelled"]]
    assert len(cancelled) == 454 and cancelled["cancel_date"].notna().all()


def test_lease_values() -> None:
    frame = read_export((EXPORTS / "apt_rent_bundang.csv").read_bytes(), "rent")
    first = frame.iloc[0]
    assert (first["lease_type"], first["deposit"], first["monthly_rent"]) == ("jeonse", 130_000, 0)
    assert first["contract_type"] == "renewal" and first["contract_term"] == "202606~202806"
    assert set(frame["lease_type"]) == {"jeonse", "wolse"}
    assert (frame.loc[frame["lease_type"] == "wolse", "monthly_rent"] > 0).all()


def _text() -> str:
    return (EXPORTS / "apt_trade_jungwon.csv").read_bytes().decode("cp949")


def test_wrong_encoding_is_named() -> None:
    with pytest.raises(MolitCsvError, match="cp949"):
        read_export(_text().encode("utf-16"), "trade")


def test_utf8_resave_is_refused() -> None:
    with pytest.raises(MolitCsvError):
        read_export(_text().encode("utf-8"), "trade")


def test_missing_or_renamed_column_is_named() -> None:
    renamed = _text().replace('"거래금액(만원)"', '"금액"', 1).encode("cp949")
    with pytest.raises(MolitCsvError, match=r"lacks column\(s\) 거래금액\(만원\)"):
        read_export(renamed, "trade")
    with pytest.raises(MolitCsvError, match="전월세구분"):
        read_export(_text().encode("cp949"), "rent")  # a sales file read as leases


def test_empty_file_and_header_only() -> None:
    with pytest.raises(MolitCsvError, match="empty"):
        read_export(b"", "trade")
    header_only = "\n".join(_text().splitlines()[:16]).encode("cp949")
    with pytest.raises(MolitCsvError, match="no rows"):
        read_export(header_only, "trade")


def test_non_numeric_price_names_the_line() -> None:
    lines = _text().splitlines()
    lines[16] = lines[16].replace('"30,400"', '"삼만"')
    with pytest.raises(MolitCsvError, match=r"거래금액.*line.*17"):
        read_export("\n".join(lines).encode("cp949"), "trade")
