"""``TaskWorker``: upstream Graflow's in-process worker, on threads, over rq.

Upstream code embeds a worker in an application process with
``TaskWorker(queue, worker_id).start()`` … ``stop()``. Here each of the
``max_concurrent_tasks`` threads is a ``GraflowWorker`` of its own (registered with rq
as ``{worker_id}-t{i}``, with its own lease heartbeat), and runs jobs through rq's
``perform_job``, so success, failure and the registries are handled exactly as in
``graflow worker``. Threads poll with a non-blocking dequeue every ``poll_interval``
seconds so that ``stop()`` returns promptly; one extra thread moves due delayed jobs
(retries) to the queue, as rq's scheduler process would.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from graflow.redisconn import client_from

log = logging.getLogger("graflow.worker")


class TaskWorker:
    """Runs the rq jobs of ``queue`` (a ``DistributedTaskQueue``) on threads of this process."""

    def __init__(
        self,
        queue: Any,
        worker_id: str,
        max_concurrent_tasks: int = 4,
        poll_interval: float = 0.1,
        graceful_shutdown_timeout: float = 30.0,
        tracer_config: dict[str, Any] | None = None,
        *,
        heartbeat: float = 10.0,
    ) -> None:
        try:
            from graflow.distributed.task_queue import DistributedTaskQueue
        except ImportError as exc:  # pragma: no cover - the module ships with graflow
            raise ValueError(
                "TaskWorker needs a RedisTaskQueue, but graflow.distributed.task_queue is missing"
            ) from exc
        if not isinstance(queue, DistributedTaskQueue):
            raise ValueError(
                f"TaskWorker needs a RedisTaskQueue (graflow.distributed.task_queue.DistributedTaskQueue), "
                f"got {type(queue).__name__} — pass the queue the producer enqueues to"
            )
        if max_concurrent_tasks < 1:
            raise ValueError(f"max_concurrent_tasks must be at least 1, got {max_concurrent_tasks}")
        self.queue = queue
        self.worker_id = worker_id
        self.max_concurrent_tasks = int(max_concurrent_tasks)
        self.poll_interval = max(0.01, float(poll_interval))
        self.graceful_shutdown_timeout = float(graceful_shutdown_timeout)
        self.heartbeat = float(heartbeat)
        # Upstream builds a tracer from this (langfuse, console); only the no-op tracer
        # ships here, so it is kept for inspection and otherwise ignored.
        self.tracer_config: dict[str, Any] = dict(tracer_config or {})
        if self.tracer_config:
            log.debug("TaskWorker %s: tracer_config %s ignored (only the no-op tracer ships)", worker_id,
                      {k: v for k, v in self.tracer_config.items() if k not in ("api_key", "secret_key")})  # fmt: skip
        self.queue_name: str = str(queue.key_prefix)
        self._connection = client_from(queue.redis_client, decode=False)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._running = False
        self._started_at: float | None = None
        self._processed = self._succeeded = self._failed = self._active = 0
        self._busy_seconds = 0.0

    @property
    def is_running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Start the threads and return; a second call while running does nothing."""
        if self._running:
            return
        self._stop.clear()
        self._started_at = time.time()
        self._threads = [
            threading.Thread(
                target=self._slot, args=(i,), name=f"{self.worker_id}-t{i}", daemon=True
            )
            for i in range(1, self.max_concurrent_tasks + 1)
        ]
        self._threads.append(
            threading.Thread(
                target=self._schedule_loop, name=f"{self.worker_id}-scheduler", daemon=True
            )
        )
        self._running = True
        for thread in self._threads:
            thread.start()
        log.info(
            "TaskWorker %s: %d threads on queue %s",
            self.worker_id,
            self.max_concurrent_tasks,
            self.queue_name,
        )

    def stop(self, timeout: float | None = None) -> None:
        """Take no new jobs, wait up to ``timeout`` (default ``graceful_shutdown_timeout``)
        for running ones. Jobs still running then keep their daemon thread; if the process
        exits, their leases lapse and failover re-runs them."""
        if not self._running:
            return
        limit = self.graceful_shutdown_timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + max(0.0, limit)
        self._stop.set()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            log.warning(
                "TaskWorker %s: %s still busy after %.1f s", self.worker_id, ", ".join(stuck), limit
            )
        self._running = False

    def get_metrics(self) -> dict[str, Any]:
        with self._lock:
            processed, busy = self._processed, self._busy_seconds
            metrics: dict[str, Any] = {
                "worker_id": self.worker_id,
                "is_running": self._running,
                "queue": self.queue_name,
                "max_concurrent_tasks": self.max_concurrent_tasks,
                "tasks_processed": processed,
                "tasks_succeeded": self._succeeded,
                "tasks_failed": self._failed,
                "active_tasks": self._active,
                "total_execution_time": busy,
                "average_execution_time": busy / processed if processed else 0.0,
                "uptime": time.time() - self._started_at if self._started_at else 0.0,
            }
        return metrics

    # ------------------------------------------------------------------ threads
    def _make_worker(self, index: int) -> Any:
        from graflow.distributed.rqapi import TimerDeathPenalty
        from graflow.worker.rq_worker import GraflowWorker

        # SIGALRM timeouts only work on the main thread; rq's timer variant works anywhere.
        return GraflowWorker(
            [self.queue_name],
            name=f"{self.worker_id}-t{index}",
            connection=self._connection,
            heartbeat=self.heartbeat,
            death_penalty_class=TimerDeathPenalty,
        )

    def _slot(self, index: int) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        worker = self._make_worker(index)
        worker.register_birth()
        worker.start_heartbeat_thread()
        try:
            while not self._stop.is_set():
                try:
                    result = worker.queue_class.dequeue_any(
                        worker.queues,
                        None,
                        connection=self._connection,
                        job_class=worker.job_class,
                        serializer=worker.serializer,
                        death_penalty_class=worker.death_penalty_class,
                    )
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    log.warning("TaskWorker %s: Redis error while dequeuing: %s", worker.name, exc)
                    self._stop.wait(1.0)
                    continue
                if result is None:
                    self._stop.wait(self.poll_interval)
                    continue
                self._run_one(worker, *result)
        finally:
            worker.stop_heartbeat_thread()
            try:
                worker.register_death()
            except Exception as exc:
                log.warning("TaskWorker %s: could not unregister: %s", worker.name, exc)

    def _run_one(self, worker: Any, job: Any, queue: Any) -> None:
        with self._lock:
            self._active += 1
        started = time.monotonic()
        ok = False
        try:
            ok = worker.execute_job(job, queue)
        except Exception:
            log.exception("TaskWorker %s: job %s could not be run", worker.name, job.id)
        finally:
            with self._lock:
                self._active -= 1
                self._processed += 1
                self._busy_seconds += time.monotonic() - started
                if ok:
                    self._succeeded += 1
                else:
                    self._failed += 1

    def _schedule_loop(self) -> None:
        """Move due delayed jobs (``enqueue_at``/``enqueue_in``, graflow's retries) to the queue."""
        from graflow.distributed.rqapi import JSONSerializer
        from graflow.worker.delayed import enqueue_due

        while not self._stop.is_set():
            try:
                enqueue_due(self._connection, [self.queue_name], JSONSerializer)
            except Exception as exc:
                log.warning("TaskWorker %s: moving delayed jobs failed: %s", self.worker_id, exc)
            self._stop.wait(1.0)


__all__ = ["TaskWorker"]
