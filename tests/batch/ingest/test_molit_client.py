"""The MOLIT client against a real HTTP server on loopback: retries, timeouts, envelopes, paging, cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from batch.ingest.molit_client import ATTEMPTS, CollectionFailed, MolitClient
from homeloop.settings import Settings

Responder = Callable[[dict[str, str], int], tuple[int, bytes, float]]


def trade_page(page: int, rows: int, total: int) -> bytes:
    start = (page - 1) * rows
    items = "".join(
        f"<item><aptNm>단지{i}</aptNm><buildYear>2001</buildYear><dealAmount>{100_000 + i:,}</dealAmount>"
        f"<dealDay>3</dealDay><dealMonth>5</dealMonth><dealYear>2026</dealYear><excluUseAr>84.9</excluUseAr>"
        f"<floor>{1 + i % 20}</floor><sggCd>41135</sggCd><umdNm> 정자동 </umdNm><cdealType> </cdealType></item>"
        for i in range(start, min(start + rows, total))
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><response><header><resultCode>000</resultCode>'
        f"<resultMsg>OK</resultMsg></header><body><items>{items}</items><numOfRows>{rows}</numOfRows>"
        f"<pageNo>{page}</pageNo><totalCount>{total}</totalCount></body></response>"
    ).encode()


class FakeMolit:
    """A scripted MOLIT endpoint: counts calls and answers as the test says."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.calls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.calls += 1
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                status, body, delay = fake.respond(query, fake.calls)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/1613000"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Responder], FakeMolit]]:
    servers: list[FakeMolit] = []

    def start(respond: Responder) -> FakeMolit:
        servers.append(FakeMolit(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client(url: str, cache: redis.Redis | None = None, rows: int = 10) -> MolitClient:
    settings = Settings(
        molit_base_url=url,
        molit_service_key="test-key",
        molit_timeout_s=0.5,
        molit_rows_per_page=rows,
    )
    return MolitClient(settings, wait_initial=0.01, wait_max=0.05, cache=cache)


def test_pages_through_total_count(serve: Callable[[Responder], FakeMolit]) -> None:
    seen: list[dict[str, str]] = []

    def respond(q: dict[str, str], n: int) -> tuple[int, bytes, float]:
        seen.append(q)
        return 200, trade_page(int(q["pageNo"]), int(q["numOfRows"]), 25), 0.0

    server = serve(respond)
    month = client(server.url).fetch_month("trade", "41135", "202605")
    assert len(month.frame) == 25 and month.requests == 3
    assert [q["pageNo"] for q in seen] == ["1", "2", "3"]
    assert {(q["LAWD_CD"], q["DEAL_YMD"], q["serviceKey"]) for q in seen} == {
        ("41135", "202605", "test-key")
    }
    assert month.frame["dong"].eq("정자동").all()


def test_retries_then_succeeds(serve: Callable[[Responder], FakeMolit]) -> None:
    server = serve(lambda q, n: (503, b"busy", 0.0) if n <= 2 else (200, trade_page(1, 10, 3), 0.0))
    month = client(server.url).fetch_month("trade", "41135", "202605")
    assert len(month.frame) == 3 and server.calls == 3


@pytest.mark.parametrize(
    ("respond", "reason"),
    [
        (lambda q, n: (500, b"oops", 0.0), "HTTPStatusError"),
        (lambda q, n: (200, trade_page(1, 10, 3), 1.0), "Timeout"),
        (
            lambda q, n: (
                200,
                b"<response><header><resultCode>99</resultCode><resultMsg>SERVICE ERROR</resultMsg></header></response>",
                0.0,
            ),
            "MOLIT API error 99",
        ),
        (lambda q, n: (200, b"\x00\xffgarbage", 0.0), "not well-formed"),
        (lambda q, n: (200, trade_page(1, 10, 3)[:200], 0.0), "not well-formed"),
    ],
)
def test_gives_up_after_three_retries_with_the_reason(
    serve: Callable[[Responder], FakeMolit], respond: Responder, reason: str
) -> None:
    server = serve(respond)
    with pytest.raises(CollectionFailed, match=reason):
        client(server.url).fetch_month("trade", "41135", "202605")
    assert server.calls == ATTEMPTS


def test_a_failing_later_page_fails_the_month(serve: Callable[[Responder], FakeMolit]) -> None:
    def respond(q: dict[str, str], n: int) -> tuple[int, bytes, float]:
        if q["pageNo"] == "2":
            return 500, b"", 0.0
        return 200, trade_page(int(q["pageNo"]), 10, 25), 0.0

    with pytest.raises(CollectionFailed, match="page 2"):
        client(serve(respond).url).fetch_month("trade", "41135", "202605")


def test_an_empty_month(serve: Callable[[Responder], FakeMolit]) -> None:
    server = serve(lambda q, n: (200, trade_page(1, 10, 0), 0.0))
    month = client(server.url).fetch_month("trade", "41135", "202605")
    assert month.frame.empty and server.calls == 1


@pytest.mark.integration
def test_a_rerun_is_served_from_the_cache(
    serve: Callable[[Responder], FakeMolit], stack_settings: Settings
) -> None:
    cache = redis.Redis.from_url(stack_settings.require().redis_url)
    server = serve(lambda q, n: (200, trade_page(int(q["pageNo"]), 10, 15), 0.0))
    key_prefix = f"{time.time_ns()}"  # a LAWD_CD nobody else uses in this Redis
    lawd = key_prefix[-5:]
    first = client(server.url, cache).fetch_month("trade", lawd, "202605")
    second = client(server.url, cache).fetch_month("trade", lawd, "202605")
    assert server.calls == 2  # two pages, fetched once
    assert second.cache_hits == 2 and second.requests == 0
    assert second.frame.equals(first.frame)
    assert 0 < cache.ttl(f"homeloop:molit:trade:{lawd}:202605:10:1") <= 7 * 24 * 3600
    cache.close()


def test_the_key_is_required() -> None:
    with pytest.raises(ValueError, match="HOMELOOP_MOLIT_SERVICE_KEY"):
        MolitClient(Settings())
