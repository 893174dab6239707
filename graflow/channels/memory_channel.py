"""In-process channel: a dict, values stored by reference.

TTLs are checked lazily on access against ``time.monotonic`` (wall-clock jumps
cannot expire or revive keys). Every write holds the channel's one lock (held for a
dict operation or two, never while user code runs), so ``append`` and ``atomic_add``
are atomic across threads, as on Redis; a read of a key without a TTL needs no lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from graflow.channels.base import Channel, check_amount, check_ttl, is_number

__all__ = ["MemoryChannel"]

_MISSING: Any = object()


class MemoryChannel(Channel):
    """Thread-safe in-memory channel; ``**ignored`` accepts Redis-only options."""

    def __init__(self, name: str, **ignored: Any) -> None:
        super().__init__(name)
        self._data: dict[str, Any] = {}
        self._expiry: dict[str, float] = {}  # key -> time.monotonic() deadline
        self._init_locks()

    def _init_locks(self) -> None:
        self._lock = threading.Lock()
        # Advisory locks are re-entrant, as upstream's: the holding thread may nest them.
        self._advisory: dict[str, threading.RLock] = {}

    @property
    def data(self) -> dict[str, Any]:
        """The stored values by key (upstream's attribute; read it, write through ``set``)."""
        return self._data

    @property
    def ttl_data(self) -> dict[str, float]:
        """Key -> expiry as a ``time.time()`` timestamp, for keys with a TTL (upstream's
        attribute). A snapshot: expiry is kept on the monotonic clock, set TTLs with ``set``."""
        with self._lock:
            expiry = dict(self._expiry)
        offset = time.time() - time.monotonic()
        return {key: deadline + offset for key, deadline in expiry.items()}

    def _current(self, key: str) -> Any:
        """The live value or ``_MISSING``; purges an expired key. Hold the key lock."""
        deadline = self._expiry.get(key)
        if deadline is not None and time.monotonic() >= deadline:
            self._data.pop(key, None)
            self._expiry.pop(key, None)
            return _MISSING
        return self._data.get(key, _MISSING)

    def _set_ttl(self, key: str, ttl: float | None) -> None:
        if ttl is not None:
            self._expiry[key] = time.monotonic() + ttl

    # ------------------------------------------------------------------ Channel

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        if ttl is not None:
            ttl = check_ttl(ttl, key, self.name)
        with self._lock:
            self._data[key] = value
            if self._expiry:
                self._expiry.pop(key, None)
            if ttl is not None:
                self._expiry[key] = time.monotonic() + ttl

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._expiry:  # no TTL to enforce: one atomic dict read
            return self._data.get(key, default)
        with self._lock:
            value = self._current(key)
        return default if value is _MISSING else value

    def delete(self, key: str) -> bool:
        with self._lock:
            existed = self._current(key) is not _MISSING
            self._data.pop(key, None)
            self._expiry.pop(key, None)
        return existed

    def exists(self, key: str) -> bool:
        with self._lock:
            return self._current(key) is not _MISSING

    def keys(self) -> list[str]:
        return [k for k in list(self._data) if self.exists(k)]

    def clear(self) -> None:
        for key in list(self._data):
            with self._lock:
                self._data.pop(key, None)
                self._expiry.pop(key, None)

    def append(self, key: str, value: Any, ttl: float | None = None) -> int:
        return self._push(key, value, ttl, front=False)

    def prepend(self, key: str, value: Any, ttl: float | None = None) -> int:
        return self._push(key, value, ttl, front=True)

    def _push(self, key: str, value: Any, ttl: float | None, *, front: bool) -> int:
        ttl = check_ttl(ttl, key, self.name)
        with self._lock:
            current = self._current(key)
            if current is _MISSING:
                current = []
                self._data[key] = current
            elif not isinstance(current, list):
                raise TypeError(
                    f"cannot {'prepend' if front else 'append'} to key {key!r} on channel "
                    f"{self.name!r}: it holds a {type(current).__name__}, not a list"
                )
            if front:
                current.insert(0, value)
            else:
                current.append(value)
            self._set_ttl(key, ttl)
            return len(current)

    def atomic_add(self, key: str, amount: int | float = 1) -> int | float:
        check_amount(amount)
        with self._lock:
            current = self._current(key)
            if current is _MISSING:
                current = 0
            elif not is_number(current):
                raise TypeError(
                    f"atomic_add on key {key!r} on channel {self.name!r}: it holds a "
                    f"{type(current).__name__}, not an int or float"
                )
            result: int | float = current + amount
            self._data[key] = result  # the TTL, if any, stays (as INCRBY keeps it)
            return result

    @contextmanager
    def lock(self, key: str, timeout: float = 10.0) -> Iterator[None]:
        with self._lock:
            lock = self._advisory.setdefault(key, threading.RLock())
        acquired = lock.acquire(timeout=timeout) if timeout > 0 else lock.acquire(blocking=False)
        if not acquired:
            raise TimeoutError(
                f"could not acquire lock {key!r} on channel {self.name!r} within {timeout}s; "
                "another holder still has it"
            )
        try:
            yield
        finally:
            lock.release()

    # ----------------------------------------------------------------- pickling

    def __getstate__(self) -> dict[str, Any]:
        """Unexpired keys with their *remaining* TTLs; locks are rebuilt on load."""
        now = time.monotonic()
        data: dict[str, Any] = {}
        ttls: dict[str, float] = {}
        for key in list(self._data):
            with self._lock:
                value = self._current(key)
                if value is _MISSING:
                    continue
                data[key] = value
                deadline = self._expiry.get(key)
                if deadline is not None:
                    ttls[key] = max(deadline - now, 0.0)
        return {"name": self.name, "data": data, "ttls": ttls}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name = state["name"]
        self._data = dict(state["data"])
        now = time.monotonic()
        self._expiry = {k: now + r for k, r in state.get("ttls", {}).items()}
        self._init_locks()
