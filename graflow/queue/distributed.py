"""Upstream path of the Redis-backed queue; it lives in ``graflow.distributed.task_queue``."""

from __future__ import annotations

from graflow.distributed.task_queue import DistributedTaskQueue, RedisTaskQueue

__all__ = ["DistributedTaskQueue", "RedisTaskQueue"]
