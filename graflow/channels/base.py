"""The ``Channel`` interface: the key-value store of one run.

Every backend must give identical results for identical call sequences, so code
written against a ``MemoryChannel`` runs unchanged on a ``RedisChannel``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from typing import Any

__all__ = ["Channel", "check_amount", "check_ttl", "is_number"]


def is_number(value: object) -> bool:
    """An ``int`` or ``float`` that ``atomic_add`` accepts (``bool`` is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_amount(amount: object) -> None:
    if not is_number(amount):
        raise TypeError(f"atomic_add amount must be an int or float, got {type(amount).__name__}")


def check_ttl(ttl: float | None, key: str, channel: str) -> float | None:
    """Validate a ``ttl`` once for every backend, so they fail alike."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        from graflow.exceptions import ConfigError

        raise ConfigError(
            f"ttl for key {key!r} on channel {channel!r} must be a positive number of "
            f"seconds or None, got {ttl!r}"
        )
    return float(ttl)


class Channel(ABC):
    """Abstract channel; ``name`` is usually the run's session id."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value``, replacing whatever is there; ``ttl`` in seconds."""

    @abstractmethod
    def get(self, key: str, default: Any = None) -> Any:
        """The value, or ``default`` if missing or expired; list keys give a list."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True if ``key`` holds an unexpired value."""

    @abstractmethod
    def keys(self) -> list[str]:
        """All unexpired keys of this channel."""

    @abstractmethod
    def clear(self) -> None:
        """Remove every key of this channel (locks excepted)."""

    @abstractmethod
    def append(self, key: str, value: Any, ttl: float | None = None) -> int:
        """Add ``value`` at the end of the list at ``key``; returns the new length."""

    @abstractmethod
    def prepend(self, key: str, value: Any, ttl: float | None = None) -> int:
        """Add ``value`` at the front of the list at ``key``; returns the new length."""

    @abstractmethod
    def atomic_add(self, key: str, amount: int | float = 1) -> int | float:
        """Add ``amount`` atomically (missing counts as 0); returns the new value."""

    def lock(self, key: str, timeout: float = 10.0) -> AbstractContextManager[None]:
        """An advisory per-key lock; ``TimeoutError`` if not acquired in time.

        The built-in channels lock for real. A channel written for upstream Graflow may
        leave it out: as upstream's base class, this default locks nothing.
        """
        return nullcontext()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.exists(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
