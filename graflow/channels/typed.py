"""Typed views of a channel: TypedDict messages checked on the way in.

Checks are shallow on purpose (required and extra keys, top-level primitive types):
cheap enough for every ``send`` and they catch the usual mistakes (a typo in a key,
a string where a number belongs) without a schema library.
"""

from __future__ import annotations

import types
from contextlib import AbstractContextManager
from typing import (
    Any,
    ClassVar,
    Generic,
    Literal,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from graflow.channels.base import Channel
from graflow.channels.schemas import (
    CycleNotificationMessage,
    DataTransferMessage,
    TaskErrorMessage,
    TaskProgressMessage,
    TaskResultMessage,
    WorkflowStateMessage,
)
from graflow.exceptions import ConfigError

__all__ = ["ChannelTypeRegistry", "TypedChannel", "is_typeddict"]

T = TypeVar("T")
_MISSING: Any = object()


def is_typeddict(tp: object) -> bool:
    """True for a TypedDict class (typing's or typing_extensions')."""
    return (
        isinstance(tp, type)
        and issubclass(tp, dict)
        and hasattr(tp, "__required_keys__")
        and hasattr(tp, "__optional_keys__")
    )


def _shallow_ok(value: Any, hint: Any) -> bool:
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return any(_shallow_ok(value, arg) for arg in get_args(hint))
    if origin is Literal:
        return value in get_args(hint)
    if origin is not None:
        hint = origin  # list[str] -> list: shallow by design
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if is_typeddict(hint):
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # TypeVars, forward references we cannot judge: accept


class TypedChannel(Generic[T]):
    """A channel whose values are ``message_type`` TypedDicts."""

    def __init__(self, channel: Channel, message_type: type[T]) -> None:
        if not is_typeddict(message_type):
            raise ConfigError(
                f"TypedChannel needs a TypedDict class as message_type, got {message_type!r}"
            )
        self._channel = channel
        self.message_type = message_type
        self._hints: dict[str, Any] = get_type_hints(message_type)
        self._required: frozenset[str] = frozenset(message_type.__required_keys__)  # type: ignore[attr-defined]
        self._allowed = frozenset(self._hints)

    @property
    def channel(self) -> Channel:
        return self._channel

    @property
    def name(self) -> str:
        return self._channel.name

    def problems(self, message: Any) -> list[str]:
        """Why ``message`` does not fit ``message_type`` (empty when it does)."""
        if not isinstance(message, dict):
            return [f"expected a dict, got {type(message).__name__}"]
        found: list[str] = []
        missing = sorted(self._required - message.keys())
        if missing:
            found.append(f"missing keys {missing}")
        extra = sorted(str(k) for k in message.keys() - self._allowed)
        if extra:
            found.append(f"unexpected keys {extra}")
        for key, hint in self._hints.items():
            if key in message and not _shallow_ok(message[key], hint):
                found.append(f"{key!r} should be {hint!r}, got {type(message[key]).__name__}")
        return found

    def is_valid(self, message: Any) -> bool:
        return not self.problems(message)

    def send(self, key: str, message: T, ttl: float | None = None) -> None:
        """Check ``message`` and store it; ``TypeError`` names what is wrong."""
        problems = self.problems(message)
        if problems:
            raise TypeError(
                f"message for key {key!r} is not a valid {self.message_type.__name__}: "
                + "; ".join(problems)
            )
        self._channel.set(key, message, ttl)

    def receive(self, key: str, default: T | None = None) -> T | None:
        """The message, ``default`` if missing, None if the stored value does not fit."""
        value = self._channel.get(key, _MISSING)
        if value is _MISSING:
            return default
        return value if self.is_valid(value) else None

    def set(self, key: str, value: T, ttl: float | None = None) -> None:
        """Upstream's name for ``send``."""
        self.send(key, value, ttl)

    get = receive

    def append(self, key: str, value: Any, ttl: float | None = None) -> int:
        return self._channel.append(key, value, ttl)

    def prepend(self, key: str, value: Any, ttl: float | None = None) -> int:
        return self._channel.prepend(key, value, ttl)

    def atomic_add(self, key: str, amount: int | float = 1) -> int | float:
        return self._channel.atomic_add(key, amount)

    def delete(self, key: str) -> bool:
        return self._channel.delete(key)

    def exists(self, key: str) -> bool:
        return self._channel.exists(key)

    def keys(self) -> list[str]:
        return self._channel.keys()

    def clear(self) -> None:
        self._channel.clear()

    def lock(self, key: str, timeout: float = 10.0) -> AbstractContextManager[None]:
        return self._channel.lock(key, timeout)

    def __repr__(self) -> str:
        return f"TypedChannel({self._channel!r}, {self.message_type.__name__})"


class ChannelTypeRegistry:
    """Process-wide names for message types (upstream's class-level registry)."""

    _types: ClassVar[dict[str, type[Any]]] = {
        "task_result": TaskResultMessage,
        "task_progress": TaskProgressMessage,
        "task_error": TaskErrorMessage,
        "workflow_state": WorkflowStateMessage,
        "data_transfer": DataTransferMessage,
        "cycle_notification": CycleNotificationMessage,
    }

    @classmethod
    def register(cls, name: str, message_type: type[Any]) -> None:
        if not is_typeddict(message_type):
            raise ConfigError(f"channel type {name!r} must be a TypedDict, got {message_type!r}")
        cls._types[name] = message_type

    @classmethod
    def get(cls, name: str) -> type[Any]:
        try:
            return cls._types[name]
        except KeyError:
            raise ConfigError(
                f"no channel message type is registered as {name!r} (known: "
                f"{', '.join(sorted(cls._types))}); call ChannelTypeRegistry.register first"
            ) from None

    @classmethod
    def names(cls) -> list[str]:
        return sorted(cls._types)

    @classmethod
    def create_channel(cls, channel: Channel, type_name: str) -> TypedChannel[Any]:
        return TypedChannel(channel, cls.get(type_name))
