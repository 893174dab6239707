"""Channels: the key-value store each run shares between its tasks.

Only the light classes are imported eagerly; the Redis backend, typed channels and
the factory load on first attribute access, so ``import graflow.channels`` never
pulls in redis or msgspec.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from graflow.channels.base import Channel
from graflow.channels.memory_channel import MemoryChannel

if TYPE_CHECKING:
    from graflow.channels.factory import ChannelBackend, ChannelFactory
    from graflow.channels.redis_channel import RedisChannel
    from graflow.channels.typed import ChannelTypeRegistry, TypedChannel

__all__ = [
    "Channel",
    "ChannelBackend",
    "ChannelFactory",
    "ChannelTypeRegistry",
    "MemoryChannel",
    "RedisChannel",
    "TypedChannel",
]

_LAZY = {
    "RedisChannel": "graflow.channels.redis_channel",
    "TypedChannel": "graflow.channels.typed",
    "ChannelTypeRegistry": "graflow.channels.typed",
    "ChannelFactory": "graflow.channels.factory",
    "ChannelBackend": "graflow.channels.factory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'graflow.channels' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
