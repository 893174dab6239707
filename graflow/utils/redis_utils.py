"""Upstream path of the Redis settings helpers; they live in ``graflow.redisconfig``."""

from __future__ import annotations

from graflow.redisconfig import (
    create_redis_client,
    ensure_redis_connection_params,
    extract_redis_config,
)

__all__ = ["create_redis_client", "ensure_redis_connection_params", "extract_redis_config"]
