"""``GraflowScheduler``: rq's scheduler process (delayed jobs, such as retries with a delay),
made robust and cheap for a graflow pool."""

from __future__ import annotations

import os
import time
from typing import Any

import redis.exceptions

from graflow.distributed.rqapi import RQScheduler
from graflow.worker.orphans import stop_with_parent

#: Seconds between heartbeats of rq's scheduler process (rq: every second).
SCHEDULER_BEAT = 10.0


class GraflowScheduler(RQScheduler):
    """rq's scheduler process (delayed retries), made to outlive a Redis outage.

    rq's dies on its first connection error and its worker restarts it only in the
    maintenance pass (every 10 minutes), so after a Redis restart delayed retries would
    stall that long. This one waits for Redis (back-off up to 5 s) and carries on.

    And it stops with its worker: rq's outlives a worker that crashed or was killed
    alone, as an orphan holding the scheduler lock forever.

    And it heartbeats every ``SCHEDULER_BEAT`` s, not every second: rq's beat is five
    commands (its key and lock live ``interval + 60`` s, so a beat every few seconds keeps
    them), which made the scheduler the costliest process of an idle pool. It still looks
    for due jobs every second (one ``ZRANGEBYSCORE`` per queue).
    """

    _worker_pid = 0
    _beat_at: float | None = None

    def heartbeat(self) -> None:
        moment = time.monotonic()
        if self._beat_at is not None and moment - self._beat_at < SCHEDULER_BEAT:
            return
        self._beat_at = moment
        super().heartbeat()  # type: ignore[no-untyped-call]

    def start(self) -> Any:
        self._worker_pid = os.getpid()  # before the fork: the scheduler's parent
        return super().start()  # type: ignore[no-untyped-call]

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()  # type: ignore[no-untyped-call]
        # SIGTERM (a clean stop: the lock is released) when the worker process dies.
        stop_with_parent(self._worker_pid or os.getppid())

    def work(self) -> None:
        delay = 0.25
        while True:
            try:
                super().work()  # type: ignore[no-untyped-call]
                return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                if self._stop_requested:
                    return
                self.log.warning("Scheduler: Redis unreachable (%s); retrying in %.2f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


__all__ = ["SCHEDULER_BEAT", "GraflowScheduler"]
