"""Upstream path of the group backends; they live in ``graflow.core.coordinator``."""

from __future__ import annotations

from graflow.core.coordinator import CoordinationBackend, TaskCoordinator
from graflow.core.group_executor import GroupExecutor

__all__ = ["CoordinationBackend", "GroupExecutor", "TaskCoordinator"]
