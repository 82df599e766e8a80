"""The English columns every source maps to, once, at ingestion.

Sales and leases are DataFrames with these columns in this order; prices in 만원
(integers), areas in ㎡, dates as ``datetime.date``.
"""

from __future__ import annotations

COMMON = (
    "region_code",  # 5-digit 시군구 (LAWD_CD / sggCd / 지역코드)
    "dong",  # 법정동 (umdNm)
    "complex_name",  # 단지명 / 아파트 / aptNm
    "complex_key",  # aptSeq where the source has it
    "jibun",  # 지번 / 번지
    "area_sqm",  # 전용면적
    "floor",  # 층
    "build_year",  # 건축년도
    "contract_date",  # 계약년월 + 계약일 / dealYear-dealMonth-dealDay
)

DEAL_COLUMNS = (
    *COMMON,
    "price",  # 거래금액, 만원
    "cancelled",  # 해제여부 / cdealType / 해제사유발생일 present
    "cancel_date",  # 해제사유발생일 / cdealDay
    "deal_type",  # 거래유형 / dealingGbn: brokered | direct
)

LEASE_COLUMNS = (
    *COMMON,
    "deposit",  # 보증금, 만원
    "monthly_rent",  # 월세, 만원 (0 for 전세)
    "lease_type",  # jeonse | wolse
    "contract_type",  # 계약구분 / contractType: new | renewal
    "contract_term",  # 계약기간 / contractTerm
)

DEAL_TYPES = {"중개거래": "brokered", "직거래": "direct"}
CONTRACT_TYPES = {"신규": "new", "갱신": "renewal"}
