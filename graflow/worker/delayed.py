"""Delayed jobs (``enqueue_at``/``enqueue_in``: graflow's retries) outside rq's scheduler process.

rq moves due jobs from a queue's ``ScheduledJobRegistry`` to the queue in a scheduler
process that only non-burst ``rq worker``s start. A ``--burst`` worker and the
threaded ``TaskWorker`` need the same move done in-process; these helpers do it under
rq's own per-queue scheduler lock, so they never race a running scheduler.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from graflow.distributed.rqapi import RQScheduler, ScheduledJobRegistry


def seconds_until_next(connection: Any, queues: Sequence[Any]) -> float | None:
    """Seconds until the earliest delayed job of ``queues`` is due (<= 0: due); None: none."""
    soonest: float | None = None
    for queue in queues:
        name = queue if isinstance(queue, str) else queue.name
        key = ScheduledJobRegistry(name, connection=connection).key  # type: ignore[no-untyped-call]
        first = connection.zrange(key, 0, 0, withscores=True)
        if first:
            score = float(first[0][1])
            soonest = score if soonest is None else min(soonest, score)
    return None if soonest is None else soonest - time.time()


def enqueue_due(connection: Any, queues: Sequence[Any], serializer: Any) -> bool:
    """Move the due delayed jobs of ``queues`` to their queues, once.

    Returns False when another scheduler holds the lock (it moves them within a second).
    """
    scheduler: Any = RQScheduler(queues, connection=connection, serializer=serializer)
    if not scheduler.acquire_locks():
        return False
    try:
        scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()
    return True


__all__ = ["enqueue_due", "seconds_until_next"]
