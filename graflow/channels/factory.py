"""Channel construction by backend name.

Backends are registered as ``"module:Class"`` strings so that naming the Redis
backend does not import redis until a Redis channel is actually created.
"""

from __future__ import annotations

import importlib
import importlib.util
import uuid
from enum import Enum
from typing import Any, ClassVar

from graflow.channels.base import Channel
from graflow.exceptions import ConfigError

__all__ = ["ChannelBackend", "ChannelFactory"]


class ChannelBackend(str, Enum):
    MEMORY = "memory"
    REDIS = "redis"


class ChannelFactory:
    """Creates channels; extra backends can be registered by name."""

    _backends: ClassVar[dict[str, type[Channel] | str]] = {
        "memory": "graflow.channels.memory_channel:MemoryChannel",
        "redis": "graflow.channels.redis_channel:RedisChannel",
    }
    # Third-party packages a backend needs at run time (checked by availability).
    _requires: ClassVar[dict[str, str]] = {"redis": "redis"}

    @staticmethod
    def _key(backend: Any) -> str:
        if isinstance(backend, ChannelBackend):
            return backend.value
        if isinstance(backend, str):
            return backend.strip().lower()
        raise ConfigError(f"channel backend must be a name or ChannelBackend, got {backend!r}")

    @classmethod
    def _resolve(cls, name: str) -> type[Channel]:
        entry = cls._backends.get(name)
        if entry is None:
            raise ConfigError(
                f"unknown channel backend {name!r}; use one of "
                f"{', '.join(sorted(cls._backends))} or ChannelFactory.register_backend"
            )
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            resolved: type[Channel] = getattr(importlib.import_module(module), attr)
            cls._backends[name] = entry = resolved
        return entry

    @classmethod
    def create_channel(
        cls,
        backend: str | ChannelBackend = ChannelBackend.MEMORY,
        name: str | None = None,
        **kw: Any,
    ) -> Channel:
        """A new channel; ``name`` defaults to a fresh uuid4 hex."""
        channel_class = cls._resolve(cls._key(backend))
        return channel_class(name or uuid.uuid4().hex, **kw)

    @classmethod
    def register_backend(cls, name: str, channel_class: type[Channel]) -> None:
        if not (isinstance(channel_class, type) and issubclass(channel_class, Channel)):
            raise ConfigError(f"backend {name!r} must be a Channel subclass, got {channel_class!r}")
        key = cls._key(name)
        cls._backends[key] = channel_class
        cls._requires.pop(key, None)

    @classmethod
    def is_backend_available(cls, backend: str | ChannelBackend) -> bool:
        try:
            key = cls._key(backend)
        except ConfigError:
            return False
        if key not in cls._backends:
            return False
        needed = cls._requires.get(key)
        return needed is None or importlib.util.find_spec(needed) is not None

    @classmethod
    def get_available_backends(cls) -> list[str]:
        return [name for name in cls._backends if cls.is_backend_available(name)]
