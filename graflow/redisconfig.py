"""Redis connection settings as plain dicts (upstream's ``graflow.utils.redis_utils``).

Upstream keeps a parallel group's Redis connection as a dict of client parameters, so
that the group pickles without a live client. The dicts made here never hold a
password — they end up in pickles (graphs, checkpoints) and in logs — and a client
built from one finds its password the way every unpickled graflow client does
(``redisconn.password_for``: the loader's URL, ``GRAFLOW_REDIS_URL`` for the same
server, ``REDIS_PASSWORD``). One function, ``client_for``, turns such a dict into a
client, for these helpers and for the pool coordinator alike.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from graflow.exceptions import ConfigError
from graflow.redisconn import ConnectionDescriptor, client_from, password_for

if TYPE_CHECKING:
    import redis

__all__ = ["client_for", "create_redis_client", "ensure_redis_connection_params", "extract_redis_config"]


def _check_client(client: Any) -> None:
    import redis as _redis

    if not isinstance(client, _redis.Redis):
        raise ConfigError(
            f"redis_client is a {type(client).__name__}, not a redis.Redis client; "
            "pass redis.Redis(...) or the connection settings (host, port, db) instead"
        )


def extract_redis_config(redis_client: redis.Redis) -> dict[str, Any]:
    """``host``, ``port``, ``db`` and ``decode_responses`` of ``redis_client``, plus
    ``username``, ``socket_timeout``, ``ssl`` and a unix socket ``path`` when set;
    never its password."""
    _check_client(redis_client)
    kwargs = redis_client.connection_pool.connection_kwargs
    where = ConnectionDescriptor.from_client(redis_client)
    config: dict[str, Any] = {
        "host": where.host,
        "port": where.port,
        "db": where.db,
        "decode_responses": bool(kwargs.get("decode_responses", False)),
    }
    if where.username is not None:
        config["username"] = where.username
    if kwargs.get("socket_timeout") is not None:
        config["socket_timeout"] = kwargs["socket_timeout"]
    if where.ssl:
        config["ssl"] = True
    if where.path:
        config["path"] = where.path
    return config


def ensure_redis_connection_params(config: MutableMapping[str, Any]) -> None:
    """Add the connection settings of ``config["redis_client"]`` to ``config`` where it
    has none (in place, like upstream); the client itself stays for the caller to drop."""
    if "redis_client" not in config:
        return
    client = config["redis_client"]
    _check_client(client)
    try:
        found = extract_redis_config(client)
    except Exception as exc:  # a client we cannot read must not silently mean localhost
        raise ConfigError(
            "cannot read the connection settings of redis_client; pass host, port and db instead",
            cause=exc,
        ) from exc
    for key, value in found.items():
        config.setdefault(key, value)


def create_redis_client(config: Mapping[str, Any]) -> redis.Redis:
    """``config["redis_client"]`` itself when given, else a new client built from the
    settings (``decode_responses`` as given, default False)."""
    if "redis_client" in config:
        client = config["redis_client"]
        _check_client(client)
        return client  # type: ignore[no-any-return]
    return client_for(config, decode=bool(config.get("decode_responses", False)))


def client_for(config: Mapping[str, Any], decode: bool = False) -> redis.Redis:
    """A client with ``decode_responses=decode`` from a group's or a queue's settings:
    its ``redis_client`` (or a twin of it), else ``url``, else ``host``/``port``/``db``
    with ``username``, ``password``, ``ssl``, ``path`` and ``socket_timeout``."""
    given = config.get("redis_client")
    if given is not None:
        return client_from(redis_client=given, decode=decode)
    username = config.get("username")
    password = config.get("password")
    timeout = config.get("socket_timeout")
    url = config.get("url")
    if url:
        return client_from(
            url=str(url), username=username, password=password, decode=decode, socket_timeout=timeout
        )
    where = ConnectionDescriptor(
        host=str(config.get("host") or "localhost"),
        port=int(config.get("port") or 6379),
        db=int(config.get("db") or 0),
        username=username,
        ssl=bool(config.get("ssl")),
        path=config.get("path"),
    )
    return client_from(
        host=where.host, port=where.port, db=where.db, username=where.username,
        password=password or password_for(where), ssl=where.ssl, path=where.path,
        decode=decode, socket_timeout=timeout,
    )  # fmt: skip
