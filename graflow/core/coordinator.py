"""Coordination backends for parallel groups, and upstream's coordinator interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.executable import Executable
    from graflow.core.handlers.group_policy import GroupExecutionPolicy


class CoordinationBackend(str, Enum):
    """Where a group's branches run."""

    REDIS = "redis"
    THREADING = "threading"
    DIRECT = "direct"

    @classmethod
    def parse(cls, value: str | CoordinationBackend) -> CoordinationBackend:
        """Accept a member or a case-insensitive name; ``ValueError`` otherwise."""
        if isinstance(value, CoordinationBackend):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        raise ValueError(
            f"unknown parallel backend {value!r}: use 'threading', 'direct' or 'redis'"
        )


class TaskCoordinator(ABC):
    """Upstream's interface of a group backend: run the members, then apply the policy.

    The built-in ones (``ThreadingCoordinator``, ``RedisCoordinator``) run the group
    through the engine's group path (``graflow.core.branches``)."""

    @abstractmethod
    def execute_group(
        self,
        group_id: str,
        tasks: list[Executable],
        execution_context: ExecutionContext,
        policy: GroupExecutionPolicy,
    ) -> None:
        """Run ``tasks`` as group ``group_id``; the policy raises to fail the group."""


__all__ = ["CoordinationBackend", "TaskCoordinator"]
