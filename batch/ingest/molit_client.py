"""The MOLIT open API over HTTP: one request per LAWD_CD × DEAL_YMD page, retried, cached.

Each request is retried 3 times (4 attempts) with exponential backoff and jitter; a page
that parses is cached in Redis by request for a TTL, so a rerun does not call the API
again. A month is returned whole or :class:`CollectionFailed` is raised: never a part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx
import pandas as pd
import redis
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from batch.ingest.molit_api import Kind, MolitResponseError, Page, parse_page
from homeloop.settings import Settings

logger = logging.getLogger(__name__)

ENDPOINTS: dict[Kind, str] = {
    "trade": "RTMSDataSvcAptTrade/getRTMSDataSvcAptTrade",
    "rent": "RTMSDataSvcAptRent/getRTMSDataSvcAptRent",
}
ATTEMPTS = 4  # the first try and 3 retries
RETRIABLE = (httpx.TransportError, httpx.HTTPStatusError, MolitResponseError)


class CollectionFailed(RuntimeError):
    """A month could not be fetched after every retry; the reason is the last error."""


@dataclass
class Month:
    """Every page of one LAWD_CD × DEAL_YMD request, parsed, with the raw payloads."""

    kind: Kind
    lawd_cd: str
    deal_ymd: str
    frame: pd.DataFrame
    payloads: list[bytes] = field(default_factory=list)
    requests: int = 0
    cache_hits: int = 0


class MolitClient:
    def __init__(
        self,
        settings: Settings,
        *,
        wait_initial: float = 0.5,
        wait_max: float = 8.0,
        cache: redis.Redis | None = None,
    ) -> None:
        if settings.molit_service_key is None:
            raise ValueError("HOMELOOP_MOLIT_SERVICE_KEY is not set")
        self._key = settings.molit_service_key
        self._base = settings.molit_base_url.rstrip("/")
        self._rows = settings.molit_rows_per_page
        self._ttl = settings.molit_cache_ttl_s
        self._http = httpx.Client(timeout=settings.molit_timeout_s)
        self._cache = cache
        self._wait = wait_exponential_jitter(initial=wait_initial, max=wait_max)

    def close(self) -> None:
        self._http.close()

    def _cache_key(self, kind: Kind, lawd_cd: str, deal_ymd: str, page: int) -> str:
        return f"homeloop:molit:{kind}:{lawd_cd}:{deal_ymd}:{self._rows}:{page}"

    def _request(self, kind: Kind, lawd_cd: str, deal_ymd: str, page: int) -> tuple[bytes, Page]:
        params = {
            "serviceKey": self._key.get_secret_value(),
            "LAWD_CD": lawd_cd,
            "DEAL_YMD": deal_ymd,
            "pageNo": str(page),
            "numOfRows": str(self._rows),
        }
        response = self._http.get(f"{self._base}/{ENDPOINTS[kind]}", params=params)
        response.raise_for_status()
        return response.content, parse_page(response.content, kind)

    def fetch_page(self, kind: Kind, lawd_cd: str, deal_ymd: str, page: int, month: Month) -> Page:
        key = self._cache_key(kind, lawd_cd, deal_ymd, page)
        cached = self._cache.get(key) if self._cache is not None else None
        if isinstance(cached, bytes):
            month.cache_hits += 1
            month.payloads.append(cached)
            return parse_page(cached, kind)
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(ATTEMPTS),
                wait=self._wait,
                retry=retry_if_exception_type(RETRIABLE),
                before_sleep=before_sleep_log(logger, logging.WARNING),
                reraise=True,
            ):
                with attempt:
                    month.requests += 1
                    payload, parsed = self._request(kind, lawd_cd, deal_ymd, page)
        except RETRIABLE as exc:
            raise CollectionFailed(
                f"{ENDPOINTS[kind]} LAWD_CD={lawd_cd} DEAL_YMD={deal_ymd} page {page}: "
                f"{type(exc).__name__}: {exc} (after {ATTEMPTS} attempts)"
            ) from exc
        if self._cache is not None and self._ttl > 0:
            self._cache.set(key, payload, ex=self._ttl)
        month.payloads.append(payload)
        return parsed

    def fetch_month(self, kind: Kind, lawd_cd: str, deal_ymd: str) -> Month:
        """Every page of the month (following ``totalCount``), or :class:`CollectionFailed`."""
        month = Month(kind, lawd_cd, deal_ymd, pd.DataFrame())
        first = self.fetch_page(kind, lawd_cd, deal_ymd, 1, month)
        pages = [first.rows]
        for page in range(2, first.last_page + 1):
            pages.append(self.fetch_page(kind, lawd_cd, deal_ymd, page, month).rows)
        month.frame = pd.concat(pages, ignore_index=True) if len(pages) > 1 else first.rows
        if len(month.frame) != first.total_count:
            raise CollectionFailed(
                f"LAWD_CD={lawd_cd} DEAL_YMD={deal_ymd}: {len(month.frame)} rows "
                f"but totalCount={first.total_count}"
            )
        return month
