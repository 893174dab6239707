"""Was it the session's own Redis that failed a task, or something the task talked to?

A worker redelivers an attempt that lost its session's Redis (the task did nothing
wrong) and fails one whose own code failed to reach some other server, as usual.
"""

from __future__ import annotations

from typing import Any

from graflow.exceptions import RedisUnavailableError, ValueTooLargeError


def lost_redis(client: Any, exc: BaseException) -> bool:
    """Whether ``exc`` says the session's Redis (``client``'s server) was unreachable.

    A connection error in the exception chain counts if it names that server's address,
    or if that server does not answer a PING now: a task's own failure to reach some
    other server is the task's error, as usual.
    """
    import redis

    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    address = f"{kwargs['host']}:{kwargs.get('port', 6379)}" if kwargs.get("host") else str(kwargs.get("path") or "")
    errors = (redis.ConnectionError, redis.TimeoutError, RedisUnavailableError)
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain and len(chain) < 20:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__ or getattr(cur, "cause", None)
    found = [e for e in chain if isinstance(e, errors)]
    if not found or any(isinstance(e, ValueTooLargeError) for e in chain):
        return False  # a write refused for its size is the task's error, whatever closed the socket
    if address and any(address in str(e) for e in found):
        return True
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError):
        return True
    return False


__all__ = ["lost_redis"]
