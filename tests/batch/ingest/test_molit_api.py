"""MOLIT API responses: every real sample parses; broken ones are refused whole, with a reason."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from batch.ingest.columns import DEAL_COLUMNS, LEASE_COLUMNS
from batch.ingest.molit_api import MolitResponseError, parse_page

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "molit" / "api_samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "kind", "rows", "total"),
    [
        ("new_json_getRTMSDataSvcAptTrade_11110_202607.json", "trade", 1, 37),
        ("new_xml_getRTMSDataSvcAptTrade_11680_202608.xml", "trade", 2, 95),
        ("new_xml_getRTMSDataSvcAptRent_11680_202608.xml", "rent", 2, 1121),
        ("old_xml_korean_RTMSOBJSvc_getRTMSDataSvcAptTrade_41115_202201.xml", "trade", 3, 3),
        ("old_xml_korean_RTMSOBJSvc_getRTMSDataSvcAptTradeDev_41570_201910.xml", "trade", 2, 586),
    ],
)
def test_every_real_sample_parses(name: str, kind: str, rows: int, total: int) -> None:
    page = parse_page(sample(name), kind)  # type: ignore[arg-type]
    assert len(page.rows) == rows and page.total_count == total
    expected = DEAL_COLUMNS if kind == "trade" else LEASE_COLUMNS
    assert tuple(page.rows.columns) == expected
    assert page.rows[["region_code", "dong", "complex_name"]].notna().all().all()
    assert all(len(code) == 5 for code in page.rows["region_code"])


def test_values_are_cleaned_and_mapped() -> None:
    old = parse_page(
        sample("old_xml_korean_RTMSOBJSvc_getRTMSDataSvcAptTrade_41115_202201.xml"), "trade"
    )
    first = old.rows.iloc[0]
    assert first["price"] == 42_700  # "    42,700\n            "
    assert first["dong"] == "인계동" and first["region_code"] == "41115"
    assert first["contract_date"] == date(2022, 1, 6)
    assert first["deal_type"] == "brokered" and not first["cancelled"]

    new = parse_page(sample("new_xml_getRTMSDataSvcAptTrade_11680_202608.xml"), "trade").rows
    cancelled = new[new["complex_name"] == "대치푸르지오써밋"].iloc[0]
    assert cancelled["cancelled"] and cancelled["cancel_date"] == date(2026, 9, 2)
    assert cancelled["price"] == 350_000 and cancelled["deal_type"] == "direct"

    rent = parse_page(sample("new_xml_getRTMSDataSvcAptRent_11680_202608.xml"), "rent").rows
    assert list(rent["lease_type"]) == ["wolse", "jeonse"]
    assert rent.iloc[1]["contract_type"] == "new" and rent.iloc[1]["deposit"] == 150_000


def test_truncated_sample_is_refused_whole() -> None:
    with pytest.raises(MolitResponseError, match="item 2 lacks region_code"):
        parse_page(sample("new_xml_getRTMSDataSvcAptTrade_11680_202605_partial.xml"), "trade")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            b"<response><header><resultCode>03</resultCode><resultMsg>NO_DATA</resultMsg></header></response>",
            "MOLIT API error 03: NO_DATA",
        ),
        (
            b"<OpenAPI_ServiceResponse><cmmMsgHeader><errMsg>SERVICE ERROR</errMsg><returnAuthMsg>SERVICE_KEY_IS_NOT_REGISTERED_ERROR</returnAuthMsg><returnReasonCode>30</returnReasonCode></cmmMsgHeader></OpenAPI_ServiceResponse>",
            "error 30: SERVICE_KEY_IS_NOT_REGISTERED_ERROR",
        ),
        (
            b'{"response":{"header":{"resultCode":"22","resultMsg":"LIMITED NUMBER OF SERVICE REQUESTS EXCEEDS ERROR."}}}',
            "error 22",
        ),
        (
            b"<response><header><resultCode>000</resultCode></header><body><items><item><aptNm>x",
            "not well-formed XML",
        ),
        (
            b'{"response":{"header":{"resultCode":"000"},"body":{"items":{"item":[{"aptNm"',
            "not valid JSON",
        ),
        (b"\x89PNG garbage", "not well-formed XML"),
        (b"   ", "empty response"),
        (b'{"foo": 1}', "no 'response'"),
    ],
)
def test_broken_responses_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(MolitResponseError, match=message):
        parse_page(payload, "trade")


def _json_page(items: object, total: int = 1) -> bytes:
    body = {"items": items, "numOfRows": 10, "pageNo": 1, "totalCount": total}
    return json.dumps(
        {"response": {"header": {"resultCode": "000", "resultMsg": "OK"}, "body": body}}
    ).encode()


ITEM = {
    "sggCd": 41135, "umdNm": "정자동", "aptNm": "느티마을", "excluUseAr": 84, "floor": 7,
    "dealYear": 2026, "dealMonth": 5, "dealDay": 3, "dealAmount": "130,000", "buildYear": 1994,
    "cdealType": " ", "cdealDay": " ",
}  # fmt: skip


def test_json_quirks() -> None:
    empty = parse_page(_json_page("", total=0), "trade")
    assert empty.rows.empty and empty.total_count == 0
    single = parse_page(_json_page({"item": ITEM}), "trade").rows  # one item comes as an object
    assert single.iloc[0]["area_sqm"] == 84.0 and single.iloc[0]["price"] == 130_000
    floaty = parse_page(_json_page({"item": [ITEM | {"excluUseAr": 84.97}]}), "trade").rows
    assert floaty.iloc[0]["area_sqm"] == 84.97


def test_old_day_ranges_take_their_first_day() -> None:
    payload = (
        "<response><header><resultCode>00</resultCode></header><body><items><item>"
        "<거래금액> 9,000</거래금액><건축년도>1988</건축년도><년>2015</년><법정동> 수내동</법정동>"
        "<아파트>양지</아파트><월>3</월><일>11~20</일><전용면적>59.4</전용면적><지역코드>41135</지역코드>"
        "<층>4</층></item></items><numOfRows>10</numOfRows><pageNo>1</pageNo><totalCount>1</totalCount>"
        "</body></response>"
    ).encode()
    row = parse_page(payload, "trade").rows.iloc[0]
    assert row["contract_date"] == date(2015, 3, 11)


def test_paging_tells_how_many_pages() -> None:
    page = parse_page(sample("new_xml_getRTMSDataSvcAptRent_11680_202608.xml"), "rent")
    assert (page.page_no, page.num_of_rows, page.last_page) == (1, 2, 561)
