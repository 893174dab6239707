"""Checkpoints in Redis: ``redis://[user:pass@]host:port/db/<key>`` (or ``rediss://``).

The artefacts are the keys ``<key>.pkl``, ``<key>.state.json`` and ``<key>.meta.json``,
written together in one MULTI/EXEC transaction, so a reader sees all three or none.
They have no TTL unless ``GRAFLOW_CHECKPOINT_TTL`` (seconds) is set. A base is the key
without its suffix; a store's root is the key "directory" (``ck`` for
``redis://h:6379/0/ck``), under which automatic bases are ``ck/session_…``.

A URL without a password (or with the masked ``***`` that ``display`` prints) gets it
from ``graflow.redisconn.password_for`` (``GRAFLOW_REDIS_URL``/``REDIS_URL`` for the same
server, then ``REDIS_PASSWORD``), so printed locations can be used again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from graflow import settings
from graflow.crash import crash_point
from graflow.exceptions import CheckpointError, UnsupportedCheckpointLocationError
from graflow.redisconn import (
    ConnectionDescriptor,
    client_from,
    mask_url,
    password_for,
    wrap_connection_errors,
)
from graflow.storage.base import (
    PARTS,
    SUFFIXES,
    CheckpointStore,
    Part,
    check_part,
    materialize,
    strip_suffix,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisStore", "checkpoint_ttl", "parse_redis_location"]

_KEY_SAFE = "/:@!$&'()*+,;=-._~"  # shown as-is in displayed key paths
_MASK = "***"


def checkpoint_ttl() -> int | None:
    """Seconds from ``GRAFLOW_CHECKPOINT_TTL``, or ``None`` (keys never expire)."""
    return settings.current().checkpoint_ttl


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStore(CheckpointStore):
    """Checkpoint artefacts as Redis keys under the key prefix ``root``."""

    kind = "redis"

    def __init__(self, scheme: str, netloc: str, db: int, root: str, query: str = "") -> None:
        self._scheme = scheme
        self._netloc = netloc  # may hold the password: never shown unmasked
        self.db = db
        self.root = root.strip("/")
        self._query = query
        self._conn_url = f"{scheme}://{netloc}/{db}" + (f"?{query}" if query else "")
        self._client_obj: redis.Redis | None = None

    def __repr__(self) -> str:
        return f"RedisStore({self.display_root()!r})"

    # -- naming ------------------------------------------------------------------------
    def key(self, base: str, part: str) -> str:
        """The Redis key holding ``part`` of ``base``."""
        return base + check_part(part)

    def _url_for(self, key: str) -> str:
        query = f"?{self._query}" if self._query else ""
        path = f"/{self.db}/{quote(key, safe=_KEY_SAFE)}" if key else f"/{self.db}"
        return mask_url(f"{self._scheme}://{self._netloc}{path}{query}")

    def display(self, base: str, part: str = "pkl") -> str:
        return self._url_for(self.key(base, part))

    def display_root(self) -> str:
        """The masked URL of this store's key prefix."""
        return self._url_for(self.root)

    def _join(self, name: str) -> str:
        return f"{self.root}/{name}" if self.root else name

    # -- connection --------------------------------------------------------------------
    def _client(self) -> redis.Redis:
        if self._client_obj is None:
            self._client_obj = client_from(url=self._conn_url)
        return self._client_obj

    def close(self) -> None:
        """Release the connection pool (the store reconnects if used again)."""
        if self._client_obj is not None:
            self._client_obj.close()
            self._client_obj = None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args)``: connection failures → RedisUnavailableError, other Redis
        errors → CheckpointError naming ``what``."""
        import redis as _redis

        try:
            with wrap_connection_errors(self._conn_url):
                return fn(*args, **kwargs)
        except _redis.RedisError as exc:
            raise CheckpointError(f"Redis failed on {what}: {exc}", exc) from exc

    # -- operations --------------------------------------------------------------------
    def _get(self, base: str, part: str) -> bytes | None:
        data = self._call(self.display(base, part), self._client().get, self.key(base, part))
        return None if data is None else bytes(data)

    def exists(self, base: str, part: str) -> bool:
        key = self.key(base, part)
        return bool(self._call(self.display(base, part), self._client().exists, key))

    def _any_exists(self, base: str) -> bool:
        keys = [self.key(base, p) for p in PARTS]
        return bool(self._call(self.display(base), self._client().exists, *keys))

    def write(self, base: str, files: dict[str, Part]) -> str:
        data = materialize(files)
        ttl = checkpoint_ttl()

        def transaction() -> None:
            pipe = self._client().pipeline(transaction=True)
            for part in PARTS:
                pipe.set(self.key(base, part), data[part], ex=ttl)
            # Nothing reaches Redis before EXEC: a crash here writes none of the keys.
            crash_point("checkpoint.after_pkl")
            crash_point("checkpoint.after_state")
            pipe.execute()

        try:
            self._call(self.display(base), transaction)
        except CheckpointError as exc:
            raise self._write_error(base, exc.cause or exc) from exc
        return self.display(base, "pkl")

    def _stems(self, part: str) -> set[str]:
        """Stems of the keys ``<root>/<stem><suffix of part>`` (one level, like a directory)."""
        suffix = SUFFIXES[part]
        prefix = f"{self.root}/" if self.root else ""
        pattern = _glob_escape(prefix) + "*" + _glob_escape(suffix)

        def scan() -> list[bytes]:
            return list(self._client().scan_iter(match=pattern, count=1000))

        stems: set[str] = set()
        for raw in self._call(self.display_root(), scan):
            key = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)
            stem = key[len(prefix) : -len(suffix)]
            if stem and "/" not in stem:  # only this "directory", like LocalStore
                stems.add(stem)
        return stems

    def list_bases(self) -> list[str]:
        return [self._join(stem) for stem in sorted(self._stems("meta"))]

    def list_torn(self) -> list[str]:
        torn = (self._stems("pkl") | self._stems("state")) - self._stems("meta")
        return [self._join(stem) for stem in sorted(torn)]


def parse_redis_location(location: str, *, directory: bool) -> tuple[RedisStore, str]:
    """``(store, base)`` for a ``redis://``/``rediss://`` location.

    For a checkpoint (``directory=False``) the key, without a ``.pkl``/``.state.json``/
    ``.meta.json`` suffix, is the base and its "directory" the store's root; for a
    directory the key is the root (and the base returned). ``/db/<key>`` is required.
    """
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    db_text, _, raw_key = parts.path.lstrip("/").partition("/")
    key = unquote(raw_key).strip("/") if directory else unquote(raw_key)
    if not db_text.isdigit() or not key.strip("/"):
        what = "checkpoint directory" if directory else "checkpoint"
        example = "checkpoints" if directory else "checkpoints/run_1"
        raise UnsupportedCheckpointLocationError(
            f"{scheme}:// {what} location {mask_url(location)} needs a database and a key: "
            f"use {scheme}://[user:password@]host:port/<db>/<key>, e.g. "
            f"{scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}/0/{example}"
        )
    db = int(db_text)
    netloc = parts.netloc
    password = unquote(parts.password) if parts.password is not None else None
    if password is None or password == _MASK:
        hostinfo = netloc.rsplit("@", 1)[-1]
        username = unquote(parts.username) if parts.username else None
        desc = ConnectionDescriptor(
            host=parts.hostname or "localhost",
            port=parts.port or 6379,
            db=db,
            username=username,
            ssl=scheme == "rediss",
        )
        found = password_for(desc)
        auth = quote(username, safe="") if username else ""
        if found:
            auth += ":" + quote(found, safe="")
        netloc = f"{auth}@{hostinfo}" if auth else hostinfo
    if directory:
        root = key
    else:
        key = strip_suffix(key)
        root = key.rsplit("/", 1)[0] if "/" in key else ""
    return RedisStore(scheme, netloc, db, root, parts.query), key
