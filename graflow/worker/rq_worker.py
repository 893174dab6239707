"""``GraflowWorker``: rq's ``Worker`` with graflow's leases, in-process execution and signals.

Why a subclass and not rq as-is (see docs/failover.md):

* **Leases.** A running graflow job's lease is its ``{job_id}:{execution_id}`` entry in
  ``keys.leases``, scored with a deadline on the Redis server's clock and renewed by the
  supervisor, another process (``graflow.worker.leases``): a task holding the GIL cannot
  starve it, and no worker's clock is compared with another's. rq's started-registry
  entry of a graflow job never expires (rq's clean-up leaves it to graflow's reaper).
  Without a supervisor (a ``GraflowWorker`` built directly) the heartbeat thread renews
  and reaps itself, through the same pass.
* **In-process by default.** rq forks once per job (about 10 ms); the throughput target
  needs ``SimpleWorker``-style execution, and a dying worker is covered by failover.
* **Signals.** First SIGTERM/SIGINT: finish the running job, exit 0 (rq's warm
  shutdown). Second: stop at once, hand the job back (``hand_back``), exit 1.
* **Lean bookkeeping.** A graflow job (``result_ttl=0``) costs rq two round trips (take =
  dequeue + start, success) instead of about twenty; see ``bookkeeping``. The keys and
  registry entries are rq's own; failures and other jobs take rq's paths.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from typing import Any

from graflow.distributed.rqapi import (
    BaseDeathPenalty,
    DequeueStrategy,
    Job,
    JobStatus,
    JSONSerializer,
    Queue,
    WorkerStatus,
    compat,
)
from graflow.distributed.rqapi.layout import (
    DEFAULT_LOGGING_DATE_FORMAT,
    DEFAULT_LOGGING_FORMAT,
    Execution,
    now,
)
from graflow.worker import bookkeeping, tracing
from graflow.worker.bookkeeping import GraflowJob
from graflow.worker.handback import hand_back_job
from graflow.worker.heartbeat import ItimerDeathPenalty
from graflow.worker.rq_lifecycle import ColdShutdown, LifecycleWorker
from graflow.worker.scheduler import GraflowScheduler

log = logging.getLogger(__name__)

#: How long the ``rq suspend`` flag read by a job's success step stands in for rq's own
#: check at the top of the next loop turn (which comes microseconds later).
_SUSPENSION_FRESH = 1.0


class StartedElsewhere(Exception):
    """The dequeued job was started by another worker first (``bookkeeping.prepare``)."""


#: Forks this process descends from (a child's count differs from its parent's): tells
#: ``hot_connection`` its connection was inherited, without a ``getpid`` call per use.
_forks = [0]


def _after_fork() -> None:
    _forks[0] += 1


os.register_at_fork(after_in_child=_after_fork)


class GraflowWorker(LifecycleWorker):
    """One rq worker process (or, for ``TaskWorker``, one thread) running graflow jobs.

    ``current_job`` is the job being run (``None`` between jobs), ``execution`` its rq
    execution; ``name`` is the rq worker name recorded on the job (``job.worker_name``)
    and on the execution, so a reaper can map a started-registry entry to its worker,
    whose liveness key is ``rq:worker:<name>``.
    """

    death_penalty_class: type[BaseDeathPenalty] = ItimerDeathPenalty
    job_class: type[Job] = GraflowJob
    log_result_lifespan = False

    def __init__(
        self,
        queues: Any,
        *,
        name: str,
        connection: Any,
        heartbeat: float = 10.0,
        fork: bool = False,
        max_redeliveries: int = 3,
        key_prefix: str = "graflow",
        serializer: Any = JSONSerializer,
        death_penalty_class: type[BaseDeathPenalty] | None = None,
        finished_job_ttl: int | None = None,
        **kwargs: Any,
    ) -> None:
        from graflow import settings

        if death_penalty_class is not None:
            self.death_penalty_class = death_penalty_class
        self.lease_seconds = float(heartbeat)
        self.fork = bool(fork)
        self.max_redeliveries = int(max_redeliveries)
        #: Seconds a completed graflow job stays in rq's finished registry (``bookkeeping``);
        #: default: the process's ``GRAFLOW_FINISHED_JOB_TTL``.
        self.finished_job_ttl = int(
            settings.current().finished_job_ttl if finished_job_ttl is None else finished_job_ttl
        )
        #: The key prefix of the reaper's own keys (its lock), like every other graflow key.
        self.key_prefix = key_prefix
        self.current_job: Job | None = None
        #: Signals that arrived before rq installed its handlers (set by the runner).
        self.pending_signals: list[int] = []
        self._lease_active = False
        self._in_job_function = False
        self._cold_shutdown = False
        self._last_tick = 0.0
        self._key_beat_at = 0.0
        self._ticker = None
        #: The job whose start ``prepare_execution`` wrote in full (rq's horse-side
        #: ``prepare_job_execution`` then has nothing left to write).
        self._prepared_job_id: str | None = None
        #: The job ``bookkeeping.take`` dequeued already started (nothing left to write).
        self._taken_job_id: str | None = None
        #: When a success step last read "not suspended" (monotonic), for the next check.
        self._not_suspended_at: float | None = None
        kwargs.setdefault("default_result_ttl", 0)  # graflow keeps results itself
        kwargs.setdefault("worker_ttl", max(60, math.ceil(3 * self.lease_seconds)))
        super().__init__(
            queues,
            name=name,
            connection=connection,
            serializer=serializer,
            job_monitoring_interval=self.refresh_interval,
            **kwargs,
        )
        # Script objects hash locally; redis-py loads them on first use (and after a flush).
        self.success_script = self.connection.register_script(bookkeeping.SUCCESS_SCRIPT)
        self.take_script = self.connection.register_script(bookkeeping.TAKE_SCRIPT)
        self.batch_script = self.connection.register_script(bookkeeping.BATCH_SCRIPT)
        self._queues_by_key: dict[str, Queue] = {}
        self._hot: Any = None
        self._hot_fork = 0
        #: job id → the "abandoned: …" reason of a job redelivered after its horse died.
        self._abandoned_reasons: dict[str, str] = {}
        self._reaper: Any = None
        # Every worker process builds one (TaskWorker: one per thread), after --import ran.
        tracing.install()
        # Every worker process (and TaskWorker thread) comes through here: per-attempt
        # output capture for `graflow logs`, off with GRAFLOW_LOG_CAPTURE_BYTES=0.
        from graflow import settings
        from graflow.worker import capture

        capture.install(settings.current().log_capture_bytes)

    @property
    def hot_connection(self) -> Any:
        """This process's own single connection for the per-task steps (take, the job's
        session steps and channel, success): no pool checks per command. Made again after
        a fork; never used for blocking commands (rq's dequeue keeps ``connection``)."""
        if self._hot is None or self._hot_fork != _forks[0]:
            from graflow.redisconn import dedicated_client

            self._hot = dedicated_client(self.connection)
            self._hot_fork = _forks[0]
        return self._hot

    def close_hot_connection(self) -> None:
        hot, self._hot = self._hot, None
        if hot is not None and self._hot_fork == _forks[0]:
            hot.close()

    # ------------------------------------------------------------------ hooks
    def on_job_abandoned(self, job: Job) -> None:
        """A forked work horse died while this worker survives: re-run its task at once."""
        from graflow.worker import failover, hard_timeout

        # Killed by the supervisor because its attempt ran past its timeout and did not stop?
        timed_out = hard_timeout.take_killed()
        if failover.is_graflow_job(job):
            why = "lost its work horse"
            if timed_out is not None:
                why = f"had its work horse killed: its task ran past its timeout of {timed_out:g} s and did not stop"
            reason = failover.redeliver(self.connection, job, lost_worker=self.name, why=why,
                                        max_redeliveries=self.max_redeliveries, reaper=self.name,
                                        timed_out=timed_out, leases_key=self.leases_key,
                                        cause="horse_lost")  # fmt: skip
            # rq records the failure right after this hook: with this reason, not its own.
            self._abandoned_reasons[job.id] = reason

    def hand_back(self, job: Job, execution: Execution | None = None) -> Job | None:
        """Give ``job`` back to its queue after a second signal.

        A graflow job goes back as attempt + 1 of its activation (the session's
        redelivery step, then a new rq job); any other job is re-enqueued as a copy
        ``<old_id>-h<n>``. Either way the old job is recorded in the failed registry as
        ``abandoned: …``.
        """
        from graflow.worker import failover

        if failover.is_graflow_job(job):
            failover.redeliver(self.connection, job, lost_worker=self.name,
                               why="stopped by a second signal; handed back",
                               max_redeliveries=self.max_redeliveries + 1, reaper=self.name,
                               leases_key=self.leases_key, cause="handed_back")  # fmt: skip
            return None
        return hand_back_job(self, job, execution or compat.current_execution(self))

    # ------------------------------------------------------------ properties
    @property
    def cold_shutdown(self) -> bool:
        return self._cold_shutdown

    @property
    def stop_requested(self) -> bool:
        """A signal (or ``rq shutdown``) asked this worker to stop."""
        return self._shutdown_requested_date is not None or self._cold_shutdown

    @property
    def dequeue_timeout(self) -> int:
        # Forked mode has no heartbeat thread: wake up often enough to tick.
        if self.fork:
            return max(1, math.ceil(self.refresh_interval))
        return int(super().dequeue_timeout)

    def prepare_execution(self, job: Job) -> Execution:
        """rq's ``prepare_execution`` and ``prepare_job_execution`` in one atomic step, with
        the first lease at ``now + heartbeat`` (``bookkeeping.prepare``); nothing to write
        for a job ``bookkeeping.take`` dequeued already started."""
        execution = compat.current_execution(self)
        if self._taken_job_id == job.id and execution is not None:
            self._taken_job_id = None
        else:
            execution = bookkeeping.prepare(self, job)
            if execution is None:
                raise StartedElsewhere(job.id)
            compat.set_execution(self, execution)
        self._prepared_job_id = job.id
        self.current_job = job
        self._lease_active = True
        if bookkeeping.is_graflow_id(job.id):
            self._publish_lease(execution.composite_key)  # the supervisor renews it from now on
        return execution

    # ------------------------------------------------------------- execution
    def execute_job(self, job: Job, queue: Queue) -> bool:
        """Run one job in this process (default) or in a forked horse (``fork=True``).

        Returns whether the job succeeded (always True in forked mode, where only the
        horse knows). Raises ``ColdShutdown`` after a second signal.
        """
        self.current_job = job
        ok = True
        try:
            if self.fork:
                super().execute_job(job, queue)  # starts with prepare_execution
            else:
                execution = self.prepare_execution(job)
                ok = bool(compat.with_execution(self.perform_job, job, queue, execution=execution))
                self.set_state(WorkerStatus.IDLE)
        except StartedElsewhere:
            log.warning("worker %s: job %s was put back while this worker stalled after "
                        "dequeuing it, and another worker started it; leaving it to that one",
                        self.name, job.id)  # fmt: skip
        finally:
            self._lease_active = False
            self._in_job_function = False
            self.current_job = None
            self._publish_lease(None)
        if self._cold_shutdown:
            raise ColdShutdown()
        return ok

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        if self._prepared_job_id == job.id:
            # prepare_execution wrote all of it already (also before a fork: the horse
            # inherits the flag).
            self._prepared_job_id = None
            self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")  # type: ignore[no-untyped-call]
        else:
            super().prepare_job_execution(job, remove_from_intermediate_queue)
        self._in_job_function = True

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        self._in_job_function = False
        if job.get_status(refresh=False) != JobStatus.FAILED and bookkeeping.lean_success(
            self, job
        ):
            # rq writes ``last_heartbeat`` into a job hash the success step deletes.
            job.ended_at = job.last_heartbeat = now()
            return
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    def cleanup_execution(self, job: Job, pipeline: Any, execution: Execution | None = None) -> None:
        """rq's clean-up of an execution (success and failure paths); the lease goes with it.

        rq 3 passes the execution (``None`` deletes nothing there); rq 2 cleans up the
        worker's own, and clears it."""
        execution = execution or compat.current_execution(self)
        compat.set_execution(self, execution)
        compat.with_execution(super().cleanup_execution, job, pipeline, execution=execution)
        if execution is not None and bookkeeping.is_graflow_id(job.id):
            pipeline.zrem(self.leases_key, execution.composite_key)

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution | None = None
    ) -> None:
        """rq's success handling; a ``result_ttl=0`` job in one round trip (``bookkeeping``)."""
        execution = execution or compat.current_execution(self)
        if bookkeeping.lean_success(self, job):
            outcome = bookkeeping.finish_success(self, job, execution)
        else:
            outcome = -1
        if outcome < 0:  # not lean, dependents to enqueue, or no longer "started": rq's path
            compat.set_execution(self, execution)
            compat.with_execution(
                super().handle_job_success, job, queue, started_job_registry, execution=execution
            )
            return
        if outcome == 0 and not self.is_horse:  # 0: not suspended (``rq suspend``)
            self._not_suspended_at = time.monotonic()
        assert job.started_at is not None and job.ended_at is not None
        taken = job.ended_at - job.started_at
        if self.log_job_description:
            self.log.info(
                "Successfully completed %s job in %ss on worker %s",
                job.description,
                taken,
                self.name,
            )
        else:
            self.log.info(
                "Successfully completed job %s in %ss on worker %s", job.id, taken, self.name
            )

    def set_state(self, state: str, pipeline: Any = None) -> None:
        # rq sets "idle" twice between two jobs (end of execute_job, top of the dequeue);
        # the success step already did.
        if pipeline is None and state == WorkerStatus.IDLE and self._state == WorkerStatus.IDLE:
            return
        super().set_state(state, pipeline=pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        """rq's ``rq suspend`` check, unless the job that just succeeded read the flag."""
        seen, self._not_suspended_at = self._not_suspended_at, None
        if seen is not None and time.monotonic() - seen < _SUSPENSION_FRESH:
            return
        super().check_for_suspension(burst)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if self._cold_shutdown and isinstance(exc_info[1], ColdShutdown):
            self.log.warning("Worker %s: job %s interrupted by a second signal", self.name, job.id)
            return
        super().handle_exception(job, *exc_info)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        # rq 3's forked monitor drops the execution from the worker before calling this.
        execution = execution or compat.current_execution(self)
        current = self.current_job
        if self._cold_shutdown and current is not None and current.id == job.id:
            self.hand_back(job, execution)
            return
        exc_string = self._abandoned_reasons.pop(job.id, exc_string)
        compat.set_execution(self, execution)
        compat.with_execution(
            super().handle_job_failure, job, queue=queue, started_job_registry=started_job_registry,
            exc_string=exc_string, execution=execution,
        )  # fmt: skip

    def handle_work_horse_killed(self, job: Job, retpid: Any, ret_val: Any, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]
        if not self._cold_shutdown:
            self.on_job_abandoned(job)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.horse_pid:  # rq would kill our own process group for pid 0
            super().kill_horse(sig)

    # ----------------------------------------------------------------- loop
    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        self._tick(force=True)

    def clean_registries(self) -> None:
        """rq's registry clean-up, after a reaper pass (of an unsupervised worker). rq
        never expires a graflow job's started entry (its lease is graflow's, on the Redis
        clock); other jobs' entries are rq's to clean."""
        self._tick(force=True)
        super().clean_registries()  # type: ignore[no-untyped-call]

    def work(
        self,
        burst: bool = False,
        logging_level: str | None = None,
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
        max_jobs: int | None = None,
        max_idle_time: int | None = None,
        with_scheduler: bool = True,
        dequeue_strategy: DequeueStrategy = DequeueStrategy.DEFAULT,
    ) -> bool:
        """rq's loop with the scheduler on by default, so delayed retries run."""
        try:
            return super().work(
                burst, logging_level, date_format, log_format, max_jobs, max_idle_time,
                with_scheduler, dequeue_strategy,
            )  # fmt: skip
        finally:
            self.stop_heartbeat_thread()

__all__ = ["ColdShutdown", "GraflowScheduler", "GraflowWorker", "ItimerDeathPenalty"]
