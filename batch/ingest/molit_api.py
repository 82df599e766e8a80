"""MOLIT open-API responses: current (English tags) and RTMSOBJSvc (Korean tags), XML and JSON.

A page is parsed whole or refused whole: an error envelope, a truncated or garbled body,
or an item missing a required field raises :class:`MolitResponseError` naming what is
wrong, and nothing of that page is returned. Korean and API field names map to the
English columns of :mod:`batch.ingest.columns` here and nowhere else.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import pandas as pd

from batch.ingest.columns import CONTRACT_TYPES, DEAL_COLUMNS, DEAL_TYPES, LEASE_COLUMNS

Kind = Literal["trade", "rent"]
OK_CODES = {"00", "000"}

# API tag (current, then old Korean) → our column.
FIELD_NAMES: dict[str, str] = {
    "sggCd": "region_code",
    "지역코드": "region_code",
    "umdNm": "dong",
    "법정동": "dong",
    "aptNm": "complex_name",
    "아파트": "complex_name",
    "aptSeq": "complex_key",
    "일련번호": "complex_key",
    "jibun": "jibun",
    "지번": "jibun",
    "excluUseAr": "area_sqm",
    "전용면적": "area_sqm",
    "floor": "floor",
    "층": "floor",
    "buildYear": "build_year",
    "건축년도": "build_year",
    "dealYear": "year",
    "년": "year",
    "dealMonth": "month",
    "월": "month",
    "dealDay": "day",
    "일": "day",
    "dealAmount": "price",
    "거래금액": "price",
    "cdealType": "cancel_flag",
    "해제여부": "cancel_flag",
    "cdealDay": "cancel_day",
    "해제사유발생일": "cancel_day",
    "dealingGbn": "deal_type",
    "거래유형": "deal_type",
    "deposit": "deposit",
    "보증금액": "deposit",
    "monthlyRent": "monthly_rent",
    "월세금액": "monthly_rent",
    "contractType": "contract_type",
    "계약구분": "contract_type",
    "contractTerm": "contract_term",
    "계약기간": "contract_term",
}

REQUIRED: dict[Kind, tuple[str, ...]] = {
    "trade": ("region_code", "dong", "complex_name", "area_sqm", "floor", "year", "month",
              "day", "price"),
    "rent": ("region_code", "dong", "complex_name", "area_sqm", "floor", "year", "month",
             "day", "deposit", "monthly_rent"),
}  # fmt: skip


class MolitResponseError(ValueError):
    """The response cannot be used: error envelope, truncated or garbled body, broken item."""


@dataclass(frozen=True)
class Page:
    """One parsed page: its rows and the paging fields that say whether more pages follow."""

    rows: pd.DataFrame
    total_count: int
    page_no: int
    num_of_rows: int

    @property
    def last_page(self) -> int:
        return max(1, -(-self.total_count // max(1, self.num_of_rows)))


def _clean(value: Any) -> str | None:
    """Strip the whitespace and newlines the API wraps values in; blank means missing."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _number(value: str | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value.replace(",", ""))
    except ValueError as exc:
        raise MolitResponseError(f"{field}: {value!r} is not a number") from exc


def _day(value: str | None) -> int | None:
    """``"7"`` → 7; old data's ranges like ``"1~10"`` → their first day (stated rule)."""
    if value is None:
        return None
    return int(value.split("~")[0])


def _short_date(value: str | None) -> date | None:
    """``cdealDay``/``해제사유발생일`` as ``YY.MM.DD`` (20YY) or ``YYYYMMDD``."""
    if value is None:
        return None
    digits = value.replace(".", "").replace("-", "")
    if len(digits) == 6:
        return date(2000 + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
    if len(digits) == 8:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    raise MolitResponseError(f"cancel date {value!r} is not YY.MM.DD")


def _to_row(item: dict[str, Any], kind: Kind, index: int) -> dict[str, Any]:
    raw = {FIELD_NAMES[k]: _clean(v) for k, v in item.items() if k in FIELD_NAMES}
    missing = [name for name in REQUIRED[kind] if raw.get(name) is None]
    if missing:
        raise MolitResponseError(
            f"item {index + 1} lacks {', '.join(missing)}: response truncated or malformed"
        )
    try:
        contract = date(int(raw["year"] or 0), int(raw["month"] or 0), _day(raw["day"]) or 1)
    except ValueError as exc:
        raise MolitResponseError(f"item {index + 1}: bad contract date: {exc}") from exc
    area, floor = _number(raw["area_sqm"], "area_sqm"), _number(raw["floor"], "floor")
    build_year = _number(raw.get("build_year"), "build_year")
    row: dict[str, Any] = {
        "region_code": raw["region_code"],
        "dong": raw["dong"],
        "complex_name": raw["complex_name"],
        "complex_key": raw.get("complex_key"),
        "jibun": raw.get("jibun"),
        "area_sqm": area,
        "floor": int(floor) if floor is not None else None,
        "build_year": int(build_year) if build_year is not None else None,
        "contract_date": contract,
    }
    if kind == "trade":
        cancel_day = _short_date(raw.get("cancel_day"))
        row.update(
            price=int(_number(raw["price"], "price") or 0),
            cancelled=raw.get("cancel_flag") == "O" or cancel_day is not None,
            cancel_date=cancel_day,
            deal_type=DEAL_TYPES.get(raw.get("deal_type") or "", raw.get("deal_type")),
        )
    else:
        rent = int(_number(raw["monthly_rent"], "monthly_rent") or 0)
        row.update(
            deposit=int(_number(raw["deposit"], "deposit") or 0),
            monthly_rent=rent,
            lease_type="jeonse" if rent == 0 else "wolse",
            contract_type=CONTRACT_TYPES.get(
                raw.get("contract_type") or "", raw.get("contract_type")
            ),
            contract_term=raw.get("contract_term"),
        )
    return row


def _envelope_error(code: str | None, message: str | None) -> MolitResponseError:
    return MolitResponseError(f"MOLIT API error {code or '?'}: {message or 'no message'}")


def _parse_xml(payload: bytes) -> tuple[list[dict[str, Any]], dict[str, str | None]]:
    try:
        root = ET.fromstring(payload)
    except ET.ParseError as exc:
        raise MolitResponseError(f"response is not well-formed XML ({exc}): truncated?") from exc
    if root.tag == "OpenAPI_ServiceResponse":  # the data portal's gateway error envelope
        header = root.find("cmmMsgHeader")
        found = {c.tag: _clean(c.text) for c in header} if header is not None else {}
        raise _envelope_error(
            found.get("returnReasonCode"), found.get("returnAuthMsg") or found.get("errMsg")
        )
    code = _clean(root.findtext("header/resultCode"))
    if code not in OK_CODES:
        raise _envelope_error(code, _clean(root.findtext("header/resultMsg")))
    body = root.find("body")
    if body is None:
        raise MolitResponseError("response has no body")
    items = [{child.tag: child.text for child in item} for item in body.iter("item")]
    paging = {k: _clean(body.findtext(k)) for k in ("totalCount", "pageNo", "numOfRows")}
    return items, paging


def _parse_json(payload: bytes) -> tuple[list[dict[str, Any]], dict[str, str | None]]:
    try:
        document = json.loads(payload)
        response = document["response"]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MolitResponseError(f"response is not valid JSON ({exc}): truncated?") from exc
    except (KeyError, TypeError) as exc:
        raise MolitResponseError("JSON response has no 'response' object") from exc
    header = response.get("header") or {}
    code = _clean(header.get("resultCode"))
    if code not in OK_CODES:
        raise _envelope_error(code, _clean(header.get("resultMsg")))
    body = response.get("body")
    if not isinstance(body, dict):
        raise MolitResponseError("response has no body")
    items_field = body.get("items")
    if items_field in ("", None):  # a month with no deals
        items: list[dict[str, Any]] = []
    else:
        item = items_field.get("item", []) if isinstance(items_field, dict) else None
        if item is None:
            raise MolitResponseError(f"unexpected items field: {items_field!r:.80}")
        items = [item] if isinstance(item, dict) else list(item)
    paging = {k: _clean(body.get(k)) for k in ("totalCount", "pageNo", "numOfRows")}
    return items, paging


def parse_page(payload: bytes, kind: Kind) -> Page:
    """Parse one response page (XML or JSON, either generation) into rows of ``kind``."""
    head = payload.lstrip()[:1]
    if not head:
        raise MolitResponseError("empty response")
    items, paging = _parse_json(payload) if head == b"{" else _parse_xml(payload)
    rows = [_to_row(item, kind, i) for i, item in enumerate(items)]
    try:
        total = int(paging["totalCount"] or len(rows))
        page_no = int(paging["pageNo"] or 1)
        num_rows = int(paging["numOfRows"] or max(1, len(rows)))
    except ValueError as exc:
        raise MolitResponseError(f"bad paging fields {paging}") from exc
    if len(rows) > num_rows:
        raise MolitResponseError(f"{len(rows)} items on a page of numOfRows={num_rows}")
    columns = DEAL_COLUMNS if kind == "trade" else LEASE_COLUMNS
    return Page(pd.DataFrame(rows, columns=list(columns)), total, page_no, num_rows)
