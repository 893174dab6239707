"""Upstream path of ``ThreadingCoordinator``; it lives in ``graflow.core.group_executor``."""

from __future__ import annotations

from graflow.core.coordinator import TaskCoordinator
from graflow.core.group_executor import ThreadingCoordinator

__all__ = ["TaskCoordinator", "ThreadingCoordinator"]
