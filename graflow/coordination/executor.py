"""Upstream path of ``GroupExecutor``; it lives in ``graflow.core.group_executor``."""

from __future__ import annotations

from graflow.core.coordinator import CoordinationBackend, TaskCoordinator
from graflow.core.group_executor import GroupExecutor, ThreadingCoordinator
from graflow.distributed.redis_coordinator import RedisCoordinator

__all__ = ["CoordinationBackend", "GroupExecutor", "RedisCoordinator", "TaskCoordinator", "ThreadingCoordinator"]
