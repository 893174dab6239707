"""graflow.redisconn: URL masking and building, descriptors, where a password comes
from after unpickling, and the connection-error wrapper."""

from __future__ import annotations

import pytest
import redis

from graflow.exceptions import ConfigError, RedisUnavailableError
from graflow.redisconn import (
    ConnectionDescriptor,
    build_url,
    loader_redis_url,
    mask_url,
    password_for,
    wrap_connection_errors,
)

SECRET = "pw-Zq81xT"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GRAFLOW_REDIS_URL", "REDIS_URL", "REDIS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)


def test_mask_and_build_url() -> None:
    assert mask_url(f"redis://:{SECRET}@h:1/0") == "redis://:***@h:1/0"
    assert mask_url(f"rediss://u:{SECRET}@h/2") == "rediss://u:***@h/2"
    assert mask_url("redis://u@h:1/0") == "redis://u@h:1/0"
    assert mask_url("redis://h:1/0") == "redis://h:1/0"
    assert SECRET not in mask_url(f"redis://h:1/0?password={SECRET}&db=1")
    assert build_url("h", 1, 2) == "redis://h:1/2"
    url = build_url("h", 1, 2, "u", "p@ss:/", ssl=True)
    assert url == "rediss://u:p%40ss%3A%2F@h:1/2"
    desc = ConnectionDescriptor.from_url(url)
    assert desc == ConnectionDescriptor("h", 1, 2, "u", True)
    assert desc.to_url() == "rediss://u@h:1/2"
    assert ConnectionDescriptor.from_url("redis://h:1/0?db=4").db == 4
    with pytest.raises(ConfigError):
        ConnectionDescriptor.from_url("http://h:1")


def test_password_for_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    desc = ConnectionDescriptor("redis.internal", 6379, 0)
    assert password_for(desc) is None
    monkeypatch.setenv("REDIS_PASSWORD", "from-env")
    assert password_for(desc) == "from-env"
    monkeypatch.setenv("REDIS_URL", "redis://:other-host@cache:6379/0")
    assert password_for(desc) == "from-env"  # another host: ignored
    monkeypatch.setenv("REDIS_URL", "redis://:url-pw@redis.internal:6379/1")
    assert password_for(desc) == "url-pw"
    monkeypatch.setenv("GRAFLOW_REDIS_URL", "redis://:graflow-pw@REDIS.internal:6379/0")
    assert password_for(desc) == "graflow-pw"
    assert password_for(desc, redis_url="redis://:loader-pw@x:1/0") == "loader-pw"
    with loader_redis_url("redis://:ctx-pw@x:1/0"):
        assert password_for(desc) == "ctx-pw"
    assert password_for(desc) == "graflow-pw"


def test_wrap_connection_errors_passes_other_errors() -> None:
    with pytest.raises(KeyError), wrap_connection_errors("redis://:x@h:1/0"):
        raise KeyError("k")
    with pytest.raises(RedisUnavailableError) as info, wrap_connection_errors("redis://:x@h:1/0"):
        raise redis.exceptions.TimeoutError("slow")
    assert info.value.url == "redis://:***@h:1/0"

    @wrap_connection_errors("redis://h:1/0")
    def fails() -> None:
        raise redis.exceptions.ConnectionError("down")

    with pytest.raises(RedisUnavailableError):
        fails()
