"""Feast configuration derived from settings."""

import pytest

from homeloop.featurestore import redis_connection_string


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6390/0", "127.0.0.1:6390,db=0"),
        ("redis://h", "h:6379"),
        ("redis://:p%40ss@h:1/3", "h:1,db=3,password=p@ss"),
        ("rediss://u:p@h:1", "h:1,password=p,username=u,ssl=true"),
    ],
)
def test_redis_connection_string(url: str, expected: str) -> None:
    assert redis_connection_string(url) == expected


def test_rejects_non_redis_url() -> None:
    with pytest.raises(ValueError, match="redis://"):
        redis_connection_string("http://h:1")
