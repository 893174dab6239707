"""How a ``GraflowWorker`` takes its next job: one round trip when one is waiting.

In-process, a job already on the queues is dequeued and started in one script
(``bookkeeping.take``); rq's blocking dequeue runs only when the queues are empty. In
``--burst`` mode, empty queues with delayed jobs still pending wait for them.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import TYPE_CHECKING, Any, cast

import redis.exceptions

from graflow.distributed.rqapi import Job, Queue, Worker
from graflow.worker import bookkeeping
from graflow.worker.delayed import enqueue_due, seconds_until_next

if TYPE_CHECKING:
    from graflow.worker.rq_worker import GraflowWorker

#: Seconds ``--burst`` sleeps between looks at delayed jobs that are not yet due.
_BURST_POLL = 0.25
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class DequeuingWorker(Worker):
    """rq's ``Worker`` with graflow's take path (``GraflowWorker`` builds on it)."""

    current_job: Job | None
    _ticker: Any
    _taken_job_id: str | None
    _queues_by_key: dict[str, Queue]

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """rq's dequeue; in burst mode, empty queues with delayed jobs still pending wait
        for them (a retry is part of the queue's work, not a reason to stop).

        In-process, a job already waiting is dequeued and started in one round trip
        (``bookkeeping.take``); rq's blocking dequeue runs only when the queues are empty.
        """
        while True:
            result = self._take_waiting() if self._ticker is not None else None
            if result is None:
                result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
                if result is not None:
                    from graflow.crash import crash_point

                    # crash point "job.dequeued": rq's blocking dequeue moved the job to
                    # the intermediate list; it is not started (no lease). The reaper
                    # must put it back (failover.Reaper._sweep_intermediate).
                    crash_point("job.dequeued")
            if result is not None:
                self.current_job = result[0]  # from here on a stop signal lets it run
                return result
            if timeout is not None or self._stop_requested:
                return None
            due_in = seconds_until_next(self.connection, self.queues)
            if due_in is None:
                return None
            if due_in > 0:
                time.sleep(min(due_in, _BURST_POLL))
            elif not enqueue_due(self.connection, self.queues, self.serializer):
                time.sleep(_BURST_POLL)  # another scheduler holds the lock and moves them

    def queue_for_key(self, queue_key: str) -> Queue:
        """The queue ``dequeue_any`` would build for ``queue_key`` (built once, then reused)."""
        queue = self._queues_by_key.get(queue_key)
        if queue is None:
            queue = self._queues_by_key[queue_key] = self.queue_class.from_queue_key(
                queue_key,
                connection=self.connection,
                job_class=self.job_class,
                serializer=self.serializer,
                death_penalty_class=self.death_penalty_class,
            )
        return queue

    def _take_waiting(self) -> tuple[Job, Queue] | None:
        """A job already on the queues, dequeued and started; None if they are empty."""
        if self._stop_requested:
            return None
        # A stop signal must find the job either not taken (stop now) or taken and
        # current (finish it first): hold SIGINT/SIGTERM until ``current_job`` is set.
        main = threading.current_thread() is threading.main_thread()
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS) if main else None
        try:
            result = bookkeeping.take(cast("GraflowWorker", self))
            if result is not None:
                self.current_job = result[0]
                self._taken_job_id = result[0].id
        except redis.exceptions.ConnectionError:
            return None  # rq's dequeue retries with its back-off
        finally:
            if held is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if result is None:
            return None
        job, queue = result
        self.reorder_queues(reference_queue=queue)
        job.redis_server_version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
        if self.log_job_description:
            self.log.info("Worker %s: %s: %s (%s)", self.name, queue.name, job.description, job.id)
        else:
            self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
        return result


__all__ = ["DequeuingWorker"]
