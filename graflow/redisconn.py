"""Redis connection helpers shared by channels, checkpoints and workers.

One place decides how a client is built (short connect timeout so a dead server
fails fast), how it is described without its password (pickles, logs, messages),
where a password comes from again after unpickling, and how redis-py's
connection errors become ``RedisUnavailableError`` with the password masked.
redis itself is imported only inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit, urlunsplit

from graflow import settings
from graflow.exceptions import RedisUnavailableError

if TYPE_CHECKING:
    import redis

__all__ = [
    "CONNECT_TIMEOUT",
    "ConnectionDescriptor",
    "as_text",
    "build_url",
    "client_cache",
    "client_from",
    "is_outage",
    "loader_redis_url",
    "mask_url",
    "parse_redis_url",
    "password_for",
    "registered_script",
    "with_default_password",
    "wrap_connection_errors",
]

#: Seconds to wait for a TCP connect: an unreachable Redis should fail fast.
CONNECT_TIMEOUT = 5.0

# Connection kwargs that are safe to copy into a client of our own. redis-py 8 also
# keeps pool-bound objects (maintenance handlers, registries) in connection_kwargs;
# copying those would tie our pool to the caller's.
_COPYABLE = frozenset(
    {
        "host", "port", "path", "db", "username", "password", "socket_timeout",
        "socket_connect_timeout", "socket_keepalive", "socket_keepalive_options",
        "socket_type", "retry_on_timeout", "retry_on_error", "retry",
        "health_check_interval", "client_name", "lib_name", "lib_version",
        "credential_provider", "protocol", "encoding", "encoding_errors",
    }
)  # fmt: skip

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for logs and messages)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hostinfo = netloc.rsplit("@", 1)
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                netloc = f"{user}:***@{hostinfo}"
        query = parts.query
        if "password" in query:
            pairs = [
                (k, "***" if k == "password" else v)
                for k, vs in parse_qs(query, keep_blank_values=True).items()
                for v in vs
            ]
            query = urlencode(pairs, safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparseable Redis URL>"


def build_url(
    host: str = "localhost",
    port: int = 6379,
    db: int = 0,
    username: str | None = None,
    password: str | None = None,
    ssl: bool = False,
) -> str:
    """A ``redis://`` (or ``rediss://``) URL; user and password are percent-quoted."""
    auth = ""
    if username or password:
        auth = quote(username or "", safe="")
        if password:
            auth += ":" + quote(password, safe="")
        auth += "@"
    shown_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{'rediss' if ssl else 'redis'}://{auth}{shown_host}:{port}/{db}"


@dataclass(frozen=True)
class ConnectionDescriptor:
    """Where a Redis is, without its password: safe to pickle and to print."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    ssl: bool = False
    path: str | None = None  # unix socket, when the client uses one

    def to_url(self, password: str | None = None) -> str:
        if self.path:
            auth = ""
            if self.username or password:
                auth = quote(self.username or "", safe="")
                auth += (":" + quote(password, safe="")) if password else ""
                auth += "@"
            return f"unix://{auth}{self.path}?db={self.db}"
        return build_url(self.host, self.port, self.db, self.username, password, self.ssl)

    @classmethod
    def from_client(cls, client: redis.Redis) -> ConnectionDescriptor:
        import redis as _redis

        pool = client.connection_pool
        kw: dict[str, Any] = dict(pool.connection_kwargs)
        ssl = issubclass(pool.connection_class, _redis.connection.SSLConnection)
        return cls(
            host=str(kw.get("host") or "localhost"),
            port=int(kw.get("port") or 6379),
            db=int(kw.get("db") or 0),
            username=kw.get("username"),
            ssl=ssl,
            path=kw.get("path"),
        )

    @classmethod
    def from_url(cls, url: str) -> ConnectionDescriptor:
        """Parse a ``redis://``, ``rediss://`` or ``unix://`` URL without connecting."""
        return parse_redis_url(url)[0]


def parse_redis_url(url: str) -> tuple[ConnectionDescriptor, str | None]:
    """``(descriptor, password)`` from a URL, following redis-py's URL rules."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        from graflow.exceptions import ConfigError

        raise ConfigError(f"{mask_url(url)} is not a Redis URL; use redis://, rediss:// or unix://")
    query = parse_qs(parts.query)
    username = unquote(parts.username) if parts.username else None
    if parts.password:
        password: str | None = unquote(parts.password)
    else:
        password = query["password"][0] if query.get("password") else None
    db_text = query["db"][0] if query.get("db") else ""
    if scheme == "unix":
        return ConnectionDescriptor(
            path=unquote(parts.path), db=int(db_text or 0), username=username
        ), password
    if not db_text:
        db_text = parts.path.lstrip("/") or "0"
    desc = ConnectionDescriptor(
        host=unquote(parts.hostname or "localhost"),
        port=int(parts.port or 6379),
        db=int(db_text),
        username=username,
        ssl=scheme == "rediss",
    )
    return desc, password


def _url_password(url: str) -> str | None:
    try:
        return parse_redis_url(url)[1]
    except ValueError:
        return None


def _same_server(desc: ConnectionDescriptor, url: str) -> bool:
    try:
        other = ConnectionDescriptor.from_url(url)
    except Exception:
        return False
    if desc.path or other.path:
        return desc.path == other.path
    a, b = desc.host.lower(), other.host.lower()
    same_host = a == b or (a in _LOCAL_HOSTS and b in _LOCAL_HOSTS)
    return same_host and desc.port == other.port


_loader_url: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "graflow_loader_redis_url", default=None
)


@contextlib.contextmanager
def loader_redis_url(url: str | None) -> Iterator[None]:
    """Make ``url`` the loader's ``redis_url=`` for objects unpickled inside the block."""
    token = _loader_url.set(url)
    try:
        yield
    finally:
        _loader_url.reset(token)


def password_for(descriptor: ConnectionDescriptor, redis_url: str | None = None) -> str | None:
    """The password for a Redis described without one.

    Order: the loader's ``redis_url`` (argument, else ``loader_redis_url``), then
    ``GRAFLOW_REDIS_URL`` / ``REDIS_URL`` when they point at the same server (host and
    port; a password is never sent to another server), then ``REDIS_PASSWORD``.
    """
    url = redis_url if redis_url is not None else _loader_url.get()
    if url:
        pw = _url_password(url)
        if pw is not None:
            return pw
    configured = settings.current()
    for env_url in (configured.redis_url, configured.fallback_redis_url):
        if env_url and _same_server(descriptor, env_url):
            pw = _url_password(env_url)
            if pw is not None:
                return pw
    return configured.redis_password


def client_from(
    redis_client: Any = None,
    url: str | None = None,
    host: str = "localhost",
    port: int = 6379,
    db: int = 0,
    username: str | None = None,
    password: str | None = None,
    ssl: bool = False,
    decode: bool = False,
    path: str | None = None,
    socket_timeout: float | None = None,
) -> redis.Redis:
    """A client with ``decode_responses=decode``: the given one if it already fits,
    else one derived from it (same server, options and credentials), else one built
    from ``url`` or the host parameters.

    Derivation works on redis-py 5–8 because it only reads the pool's public
    ``connection_class`` and ``connection_kwargs``. The caller owns a new client
    (``result is not redis_client``) and should close it.
    """
    import redis as _redis

    if redis_client is not None:
        pool = redis_client.connection_pool
        kwargs: dict[str, Any] = dict(pool.connection_kwargs)
        if bool(kwargs.get("decode_responses", False)) == decode:
            return redis_client  # type: ignore[no-any-return]
        copied = {k: v for k, v in kwargs.items() if k in _COPYABLE or k.startswith("ssl_")}
        if copied.get("socket_connect_timeout") is None:
            copied["socket_connect_timeout"] = CONNECT_TIMEOUT
        new_pool = _redis.ConnectionPool(
            connection_class=pool.connection_class, decode_responses=decode, **copied
        )
        return _redis.Redis(connection_pool=new_pool)
    common: dict[str, Any] = {
        "decode_responses": decode,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "retry": _retry(),
    }
    if socket_timeout is not None:
        common["socket_timeout"] = socket_timeout
    if url:
        # Credentials in the URL win; the separate ones fill in what it leaves out.
        extra = {k: v for k, v in (("username", username), ("password", password)) if v}
        return _redis.Redis.from_url(url, **extra, **common)
    if path:
        return _redis.Redis(
            unix_socket_path=path, db=db, username=username, password=password, **common
        )
    return _redis.Redis(
        host=host, port=port, db=db, username=username, password=password, ssl=ssl, **common
    )


def dedicated_client(client: redis.Redis) -> redis.Redis:
    """A client on one connection of its own, with ``client``'s settings.

    Its commands skip the pool's per-command bookkeeping (a readiness poll and two
    ``getpid`` calls, about a fifth of a round trip on a VM), which a worker pays several
    times per task. For one process, and for commands that never block (a blocking read
    would hold every caller behind it); the caller closes it.
    """
    import redis as _redis

    pool = client.connection_pool
    own = _redis.ConnectionPool(connection_class=pool.connection_class, **dict(pool.connection_kwargs))
    return _redis.Redis(connection_pool=own, single_connection_client=True)


def _retry() -> Any:
    """One quick retry: enough for a connection the server dropped while idle, while a
    dead server or a wrong password still fails in about one connect timeout (redis-py
    8 would otherwise retry ten times with growing back-off, redis-py 5 not at all)."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 1)


def _is_unavailable(exc: BaseException) -> tuple[bool, str]:
    """Is ``exc`` redis-py saying the server cannot be used (and why)?"""
    try:
        from redis import exceptions as rex
    except ImportError:  # pragma: no cover - redis is a hard dependency
        return False, ""
    if isinstance(exc, rex.AuthenticationError):
        return True, "Redis refused the credentials (authentication failed)"
    if isinstance(exc, (rex.ConnectionError, rex.TimeoutError)):
        return True, ""
    if isinstance(exc, rex.ResponseError):
        text = str(exc)
        if text.startswith(("NOAUTH", "WRONGPASS", "invalid password")):
            return True, "Redis refused the credentials (authentication failed)"
        if isinstance(exc, rex.NoPermissionError) or text.startswith("NOPERM"):
            return True, "Redis denied permission for this user"
    return False, ""


def is_outage(exc: BaseException) -> bool:
    """Is ``exc`` (or the redis-py error a ``RedisUnavailableError`` wraps) a transient loss
    of Redis (refused or reset connection, timeout, a server loading its data) that is
    worth waiting out, as opposed to a refusal (credentials, permissions) that is not?"""
    try:
        from redis import exceptions as rex
    except ImportError:  # pragma: no cover - redis is a hard dependency
        return False
    if isinstance(exc, RedisUnavailableError):
        inner = exc.__cause__
        if inner is None or inner is exc:
            return False
        exc = inner
    if isinstance(exc, rex.AuthenticationError):
        return False
    return isinstance(exc, (rex.ConnectionError, rex.TimeoutError))


@contextlib.contextmanager
def wrap_connection_errors(url: str) -> Iterator[None]:
    """Turn redis-py connection, timeout and auth failures into ``RedisUnavailableError``.

    ``url`` is masked before it is used. Works as a ``with`` block or a decorator.
    """
    try:
        yield
    except RedisUnavailableError:
        raise
    except Exception as exc:
        unavailable, detail = _is_unavailable(exc)
        if unavailable:
            raise RedisUnavailableError(mask_url(url), exc, detail=detail) from exc
        raise


def with_default_password(url: str, password: str | None = None) -> str:
    """``url`` with ``password`` (default: ``REDIS_PASSWORD`` of the process's settings)
    filled in when it names no password itself."""
    password = password or settings.current().redis_password
    if not password or not url.startswith(("redis://", "rediss://")):
        return url
    descriptor, existing = parse_redis_url(url)
    if existing:
        return url
    return descriptor.to_url(password)


def as_text(value: Any) -> str:
    """A reply of a binary client (bytes) or of a decoding one (str) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


_scripts: dict[str, Any] = {}
_scripts_lock = threading.Lock()


def registered_script(client: Any, source: str) -> Any:
    """The Lua script ``source``, registered once per process. Call it with ``client=``: the
    ``Script`` runs on whichever client is given (EVALSHA, loading it when Redis lacks it)."""
    script = _scripts.get(source)
    if script is None:
        with _scripts_lock:
            script = _scripts.get(source)
            if script is None:
                script = _scripts[source] = client.register_script(source)
    return script


def client_cache(client: Any, name: str) -> dict[Any, Any]:
    """A dict that lives and dies with ``client``, for objects bound to it (rq queues, graph
    stores). A module-level cache keyed by ``id(client)`` would keep every client, and
    its connections, alive for good (a producer makes one per run) and could hand a new
    client an object bound to a dead one whose id it reused."""
    attr = f"_graflow_cache_{name}"
    cache: dict[Any, Any] | None = getattr(client, attr, None)
    if cache is None:
        cache = {}
        with contextlib.suppress(AttributeError):  # a client that takes no attribute: uncached
            setattr(client, attr, cache)
    return cache
