"""Upstream path of the in-process queue items; they live in ``graflow.core.queue``."""

from __future__ import annotations

from graflow.core.queue import TaskQueue, TaskSpec, TaskStatus

__all__ = ["TaskQueue", "TaskSpec", "TaskStatus"]
