"""Redis-backed channel: the same behaviour as ``MemoryChannel``, shared
by every process of a run.

Values are tag-encoded (``graflow.channels.encoding``) so they round-trip exactly;
every read-modify-write is one Lua script, so concurrent workers never lose an
update. The channel always talks through its own binary client derived from
whatever client it is given, and it pickles without the password (the loader
supplies it again, ``graflow.redisconn.password_for``).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from graflow import codec, keys
from graflow.channels import _redis_scripts as lua
from graflow.channels.base import Channel, check_amount, check_ttl
from graflow.channels.encoding import decode_value, encode_value
from graflow.exceptions import ChannelError, RedisUnavailableError
from graflow.limits import send_checked
from graflow.redisconn import (
    ConnectionDescriptor,
    client_from,
    mask_url,
    parse_redis_url,
    password_for,
    wrap_connection_errors,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisChannel"]

log = logging.getLogger("graflow.channels")
_GLOB_SPECIAL = frozenset(b"*?[]\\")


def _glob_escape(raw: bytes) -> bytes:
    return b"".join(b"\\" + bytes((c,)) if c in _GLOB_SPECIAL else bytes((c,)) for c in raw)


class RedisChannel(Channel):
    """Channel on Redis; data at ``{ns}:channel:{{name}}:{key}``, locks at ``{ns}:lock:{{name}}:{key}``
    (the name is a cluster hash tag, see ``graflow.keys``)."""

    #: Seconds after which a lock whose holder died frees itself. A body that runs
    #: longer loses the lock (a warning is logged on release).
    lock_lease: float | None = 60.0
    #: Lua sources by name, loaded on first use (``graflow.channels.fenced`` adds its own).
    _SOURCES: ClassVar[dict[str, str]] = {"get": lua.GET, "push": lua.PUSH, "add": lua.ATOMIC_ADD}

    def __init__(
        self,
        name: str,
        redis_client: Any = None,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        *,
        url: str | None = None,
        key_prefix: str = "graflow",
        username: str | None = None,
        password: str | None = None,
        ssl: bool = False,
        secret_key: codec.SecretKey = None,
        **ignored: Any,
    ) -> None:
        super().__init__(name)
        self.namespace = key_prefix
        self._secret_key = secret_key
        self._user_client: Any = None
        self._client: redis.Redis | None = None
        self._owns_client = False
        self._scripts: dict[str, Any] = {}
        if redis_client is not None:
            self.redis_client = redis_client
        elif url:
            desc, url_password = parse_redis_url(url)
            client = client_from(url=url, username=username, password=password)
            self._install(client, owned=True, descriptor=desc, password=url_password or password)
        else:
            desc = ConnectionDescriptor(str(host), int(port), int(db), username, bool(ssl))
            client = client_from(
                host=desc.host, port=desc.port, db=desc.db, username=username,
                password=password, ssl=desc.ssl,
            )  # fmt: skip
            self._install(client, owned=True, descriptor=desc, password=password)

    # -------------------------------------------------------------- connection

    def _install(
        self,
        client: redis.Redis,
        *,
        owned: bool,
        descriptor: ConnectionDescriptor,
        password: str | None,
    ) -> None:
        old, old_owned = getattr(self, "_client", None), getattr(self, "_owns_client", False)
        self._client = client
        self._owns_client = owned
        self.descriptor = descriptor
        self._masked_url = mask_url(descriptor.to_url(password))
        self._scripts = {}
        self._script_lock = threading.Lock()
        if old is not None and old_owned and old is not client:
            old.connection_pool.disconnect()

    @property
    def redis_client(self) -> Any:
        """The client given to the channel, else the channel's own binary client."""
        return self._user_client if self._user_client is not None else self._client

    @redis_client.setter
    def redis_client(self, client: Any) -> None:
        if client is None or not hasattr(client, "connection_pool"):
            raise TypeError(f"redis_client must be a redis.Redis client, got {client!r}")
        binary = client_from(redis_client=client)
        self._install(
            binary,
            owned=binary is not client,
            descriptor=ConnectionDescriptor.from_client(client),
            password=client.connection_pool.connection_kwargs.get("password"),
        )
        self._user_client = client

    @property
    def key_prefix(self) -> str:
        """The full per-channel prefix ``"{ns}:channel:{name}:"``."""
        return keys.channel_prefix(self.namespace, self.name)

    @property
    def url(self) -> str:
        """The server's URL with the password masked."""
        return self._masked_url

    def _redis(self) -> redis.Redis:
        assert self._client is not None
        return self._client

    def _guard(self) -> AbstractContextManager[None]:
        return wrap_connection_errors(self._masked_url)

    def _script(self, name: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            with self._script_lock:
                script = self._scripts[name] = self._redis().register_script(self._SOURCES[name])
        return script

    # The writes, one method each, so that an attempt-bound channel (graflow.channels.fenced)
    # can put its owner check into the same round trip.
    def _eval(self, name: str, names: list[Any], args: list[Any], key: str) -> Any:
        return self._script(name)(keys=names, args=args)

    def _write(self, key: str, data: bytes, px: int | None) -> None:
        self._redis().set(self._k(key), data, px=px)

    def _unlink(self, names: list[bytes], key: str) -> int:
        return int(self._redis().unlink(*names))

    def _new_lock(self, key: str, timeout: float) -> Any:
        return self._redis().lock(self._lock_key(key), timeout=self.lock_lease, blocking_timeout=max(timeout, 0.0))

    def _k(self, key: str) -> bytes:
        return (self.key_prefix + key).encode("utf-8", "surrogateescape")

    def _lock_key(self, key: str) -> str:
        return keys.channel_lock(self.namespace, self.name, key)

    def _encode(self, value: Any) -> bytes:
        return encode_value(value, secret_key=self._secret_key)

    def _decode(self, key: str, raw: bytes) -> Any:
        source = f"Redis key {self.key_prefix + key!r} at {self._masked_url}"
        return decode_value(raw, secret_key=self._secret_key, source=source)

    def _where(self, key: str) -> str:
        return f"key {key!r} of channel {self.name!r} ({self._masked_url})"

    def ping(self) -> bool:
        """True if the server answers; never raises for an unreachable server."""
        try:
            with self._guard():
                return bool(self._redis().ping())
        except RedisUnavailableError:
            return False

    def close(self) -> None:
        """Drop the channel's own connections (a client passed in is left alone).

        The channel stays usable: redis-py reconnects on the next command.
        """
        if self._client is not None and self._owns_client:
            self._client.connection_pool.disconnect()

    def __repr__(self) -> str:
        return f"RedisChannel(name={self.name!r}, namespace={self.namespace!r}, url={self.url!r})"

    def __enter__(self) -> RedisChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ Channel

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        ttl = check_ttl(ttl, key, self.name)
        data = self._encode(value)
        with self._guard():
            # SET replaces a key of any type (a list included) in one command. Sized first:
            # an oversized value fails here, never as a "Broken pipe" that looks like an outage.
            send_checked(self._redis(), key, len(data),
                         lambda: self._write(key, data, _ms(ttl) if ttl is not None else None))  # fmt: skip

    def get(self, key: str, default: Any = None) -> Any:
        with self._guard():
            reply = self._script("get")(keys=[self._k(key)])
        tag = reply[0]
        if tag == b"s":
            return self._decode(key, reply[1])
        if tag == b"l":
            return [self._decode(key, item) for item in reply[1:]]
        if tag == b"n":
            return default
        raise ChannelError(
            f"{self._where(key)} holds a Redis {reply[1].decode()}, which no graflow "
            "channel writes; delete it or use another key"
        )

    def delete(self, key: str) -> bool:
        with self._guard():
            return bool(self._unlink([self._k(key)], key))

    def exists(self, key: str) -> bool:
        with self._guard():
            return bool(self._redis().exists(self._k(key)))

    def _scan(self) -> Iterator[bytes]:
        pattern = _glob_escape(self.key_prefix.encode("utf-8", "surrogateescape")) + b"*"
        yield from self._redis().scan_iter(match=pattern, count=1000)

    def keys(self) -> list[str]:
        cut = len(self.key_prefix.encode("utf-8", "surrogateescape"))
        with self._guard():
            found = dict.fromkeys(self._scan())  # SCAN may repeat a key
        return [k[cut:].decode("utf-8", "surrogateescape") for k in found]

    def clear(self) -> None:
        with self._guard():
            batch: list[bytes] = []
            for raw in self._scan():
                batch.append(raw)
                if len(batch) >= 500:
                    self._unlink(batch, "*")
                    batch = []
            if batch:
                self._unlink(batch, "*")

    def append(self, key: str, value: Any, ttl: float | None = None) -> int:
        return self._push(key, value, ttl, front=False)

    def prepend(self, key: str, value: Any, ttl: float | None = None) -> int:
        return self._push(key, value, ttl, front=True)

    def _push(self, key: str, value: Any, ttl: float | None, *, front: bool) -> int:
        ttl = check_ttl(ttl, key, self.name)
        item = self._encode(value)
        head: list[Any] = [b"l" if front else b"r", str(_ms(ttl)) if ttl is not None else "", item]
        args = head
        for _ in range(100):
            with self._guard():
                reply = send_checked(self._redis(), key, len(item),
                                     functools.partial(self._eval, "push", [self._k(key)], args, key))  # fmt: skip
            if reply[0] == b"ok":
                return int(reply[1])
            if reply[0] == b"wrongtype":
                raise TypeError(f"cannot add to {self._where(key)}: it holds a Redis "
                                f"{reply[1].decode()}, not a list")  # fmt: skip
            # A list stored by set() is one string: decode it here, let Lua swap it
            # for a Redis LIST if it is still the same bytes (compare-and-set).
            current = self._decode(key, reply[1])
            if not isinstance(current, list):
                raise TypeError(
                    f"cannot {'prepend' if front else 'append'} to {self._where(key)}: it "
                    f"holds a {type(current).__name__}, not a list"
                )
            args = [*head, reply[1], *(self._encode(x) for x in current)]
        raise ChannelError(f"{self._where(key)} kept changing while converting it to a list")

    def atomic_add(self, key: str, amount: int | float = 1) -> int | float:
        check_amount(amount)
        if isinstance(amount, int):
            if not -(2**63) <= amount < 2**63:
                raise OverflowError(f"atomic_add amount {amount} exceeds 64 bits on Redis")
            head = [str(amount), "i"]
        else:
            head = [repr(float(amount)), "f"]
        args: list[Any] = head
        for _ in range(100):
            with self._guard():
                reply = self._eval("add", [self._k(key)], args, key)
            tag = reply[0]
            if tag == b"i":
                return int(reply[1])
            if tag == b"f":
                return float(reply[1])
            if tag == b"overflow":
                raise OverflowError(
                    f"atomic_add on {self._where(key)} would leave the 64-bit range Redis counts in"
                )
            if tag == b"wrongtype":
                raise TypeError(
                    f"atomic_add on {self._where(key)}: it holds a Redis "
                    f"{reply[1].decode()}, not a number"
                )
            current = self._decode(key, reply[1])
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise TypeError(
                    f"atomic_add on {self._where(key)}: it holds a "
                    f"{type(current).__name__}, not an int or float"
                )
            if isinstance(current, int) and not -(2**63) <= current < 2**63:
                raise OverflowError(f"{self._where(key)} holds an int beyond 64 bits")
            text = str(current) if isinstance(current, int) else repr(current)
            args = [*head, reply[1], text]
        raise ChannelError(f"{self._where(key)} kept changing during atomic_add")

    @contextmanager
    def lock(self, key: str, timeout: float = 10.0) -> Iterator[None]:
        from redis.exceptions import LockError

        lk = self._new_lock(key, timeout)
        with self._guard():
            acquired = lk.acquire(blocking=True)
        if not acquired:
            raise TimeoutError(
                f"could not acquire lock on {self._where(key)} within {timeout}s; "
                "another holder still has it"
            )
        try:
            yield
        finally:
            try:
                with self._guard():
                    lk.release()
            except LockError:
                log.warning(
                    "lock on %s expired before it was released (held longer than "
                    "lock_lease=%ss); another holder may have entered",
                    self._where(key),
                    self.lock_lease,
                )

    # ----------------------------------------------------------------- pickling

    def __getstate__(self) -> dict[str, Any]:
        """Where the data is, never the password or the signing key."""
        return {
            "v": 1,
            "name": self.name,
            "namespace": self.namespace,
            "descriptor": self.descriptor,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        desc: ConnectionDescriptor = state["descriptor"]
        self.name = state["name"]
        self.namespace = state["namespace"]
        self._secret_key = None
        self._user_client = None
        self._client = None
        self._owns_client = False
        password = password_for(desc)  # redis-py connects only on the first command
        client = client_from(
            host=desc.host, port=desc.port, db=desc.db, username=desc.username,
            password=password, ssl=desc.ssl, path=desc.path,
        )  # fmt: skip
        self._install(client, owned=True, descriptor=desc, password=password)


def _ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))
