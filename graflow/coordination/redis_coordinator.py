"""Upstream path of the pool coordinator; it lives in ``graflow.distributed.redis_coordinator``."""

from __future__ import annotations

from graflow.distributed.redis_coordinator import RedisCoordinator, run_branches_on_pool

__all__ = ["RedisCoordinator", "run_branches_on_pool"]
