"""graflow.utils.redis_utils (upstream's path; code in graflow.redisconfig): Redis connection
settings as plain dicts that never carry a password, and clients built from them."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import redis

from graflow.exceptions import ConfigError
from graflow.redisconfig import client_for
from graflow.utils.redis_utils import (
    create_redis_client,
    ensure_redis_connection_params,
    extract_redis_config,
)

SECRET = "pw-Hk27vQ"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GRAFLOW_REDIS_URL", "REDIS_URL", "REDIS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)


def test_extract_gives_upstreams_keys_without_the_password() -> None:
    client = redis.Redis(
        host="redis.example", port=6380, db=3, username="app", password=SECRET,
        socket_timeout=2.5, decode_responses=True,
    )  # fmt: skip
    config = extract_redis_config(client)
    assert config == {
        "host": "redis.example", "port": 6380, "db": 3, "decode_responses": True,
        "username": "app", "socket_timeout": 2.5,
    }  # fmt: skip
    assert SECRET not in repr(config) and SECRET.encode() not in pickle.dumps(config)
    # Upstream's answer for a default client (redis-py 8 fills in a socket timeout of 5 s).
    plain = redis.Redis()
    default: dict[str, Any] = {"host": "localhost", "port": 6379, "db": 0, "decode_responses": False}
    if plain.connection_pool.connection_kwargs.get("socket_timeout") is not None:
        default["socket_timeout"] = plain.connection_pool.connection_kwargs["socket_timeout"]
    assert extract_redis_config(plain) == default
    # TLS is kept (upstream's dict drops it, so its rebuilt client talks plain TCP).
    assert extract_redis_config(redis.Redis(host="h", ssl=True))["ssl"] is True


def test_ensure_fills_in_missing_settings_in_place() -> None:
    client = redis.Redis(host="redis.example", port=6380, db=2, password=SECRET)
    config: dict[str, Any] = {"redis_client": client, "key_prefix": "p", "port": 9999}
    ensure_redis_connection_params(config)
    assert config["redis_client"] is client  # stays until the caller drops it, as upstream
    assert config["host"] == "redis.example" and config["db"] == 2 and config["port"] == 9999
    assert config["key_prefix"] == "p" and "password" not in config
    assert SECRET.encode() not in pickle.dumps({k: v for k, v in config.items() if k != "redis_client"})
    untouched = {"host": "h"}
    ensure_redis_connection_params(untouched)
    assert untouched == {"host": "h"}


def test_a_client_that_is_not_redis_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"not a redis\.Redis client"):
        ensure_redis_connection_params({"redis_client": object()})
    with pytest.raises(ConfigError, match=r"not a redis\.Redis client"):
        create_redis_client({"redis_client": "redis://localhost"})
    with pytest.raises(ConfigError):
        extract_redis_config(object())  # type: ignore[arg-type]


def test_create_returns_the_given_client_or_connects_from_the_settings(redis_url: str, key_prefix: str) -> None:
    given = redis.Redis.from_url(redis_url)
    rebuilt = None
    try:
        assert create_redis_client({"redis_client": given, "host": "elsewhere"}) is given
        config = extract_redis_config(given)
        config["decode_responses"] = True
        rebuilt = create_redis_client(config)
        assert rebuilt is not given
        rebuilt.set(f"{key_prefix}:k", "v")
        assert rebuilt.get(f"{key_prefix}:k") == "v"  # decoding, as asked
        assert given.get(f"{key_prefix}:k") == b"v"  # the same server
    finally:
        given.delete(f"{key_prefix}:k")
        given.close()
        if rebuilt is not None:
            rebuilt.close()


def test_a_rebuilt_client_finds_its_password_as_unpickled_clients_do(monkeypatch: pytest.MonkeyPatch) -> None:
    # The settings never hold the password; building a client looks it up (REDIS_PASSWORD here).
    monkeypatch.setenv("REDIS_PASSWORD", SECRET)
    config = extract_redis_config(redis.Redis(host="h", port=1, password=SECRET))
    kwargs = create_redis_client(config).connection_pool.connection_kwargs
    assert kwargs["password"] == SECRET and kwargs["host"] == "h"
    explicit = create_redis_client({"host": "h", "password": "other", "socket_timeout": 4.0})
    assert explicit.connection_pool.connection_kwargs["password"] == "other"
    assert explicit.connection_pool.connection_kwargs["socket_timeout"] == 4.0


def test_client_for_derives_a_binary_twin_of_a_decoding_client() -> None:
    decoding = redis.Redis(host="h", port=2, decode_responses=True, password=SECRET)
    twin = client_for({"redis_client": decoding})
    assert twin is not decoding
    kwargs = twin.connection_pool.connection_kwargs
    assert kwargs["decode_responses"] is False and kwargs["password"] == SECRET and kwargs["port"] == 2
    tls = client_for({"host": "h", "ssl": True, "username": "u", "password": SECRET})
    assert issubclass(tls.connection_pool.connection_class, redis.connection.SSLConnection)
    assert tls.connection_pool.connection_kwargs["username"] == "u"
