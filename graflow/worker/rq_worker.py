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

import contextlib
import logging
import math
import os
import signal
import threading
import time
from datetime import timedelta
from types import FrameType
from typing import Any

import redis.exceptions
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.logutils import blue, green
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.timeouts import BaseDeathPenalty
from rq.utils import now
from rq.worker import DequeueStrategy, Worker, WorkerStatus

from graflow import keys
from graflow.worker import attempt_watch, bookkeeping, leases
from graflow.worker.bookkeeping import GraflowJob
from graflow.worker.delayed import enqueue_due, seconds_until_next
from graflow.worker.handback import hand_back_job
from graflow.worker.heartbeat import HeartbeatThread, ItimerDeathPenalty
from graflow.worker.scheduler import GraflowScheduler

log = logging.getLogger(__name__)

#: Seconds ``--burst`` sleeps between looks at delayed jobs that are not yet due.
_BURST_POLL = 0.25
#: How long the ``rq suspend`` flag read by a job's success step stands in for rq's own
#: check at the top of the next loop turn (which comes microseconds later).
_SUSPENSION_FRESH = 1.0
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
#: Seconds between heartbeats of rq's worker key (and the job's execution TTLs). Liveness
#: is the lease's job; this only keeps rq's view (``rq info``, dashboards) current.
WORKER_KEY_BEAT = 10.0


class ColdShutdown(SystemExit):
    """Raised in the worker by the second signal; rq lets ``SystemExit`` through its loop."""

    def __init__(self) -> None:
        super().__init__(1)


class StartedElsewhere(Exception):
    """The dequeued job was started by another worker first (``bookkeeping.prepare``)."""


class GraflowWorker(Worker):
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
        **kwargs: Any,
    ) -> None:
        if death_penalty_class is not None:
            self.death_penalty_class = death_penalty_class
        self.lease_seconds = float(heartbeat)
        self.fork = bool(fork)
        self.max_redeliveries = int(max_redeliveries)
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
        #: The lease pass of an unsupervised worker (``leases.LeasePass``), made on first use.
        self._own_pass: Any = None
        self._ticker: HeartbeatThread | None = None
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
        #: job id → the "abandoned: …" reason of a job redelivered after its horse died.
        self._abandoned_reasons: dict[str, str] = {}
        self._reaper: Any = None

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
                                        timed_out=timed_out, leases_key=self.leases_key)  # fmt: skip
            # rq records the failure right after this hook: with this reason, not its own.
            self._abandoned_reasons[job.id] = reason

    def on_tick(self) -> None:
        """Runs at start-up and about every ``heartbeat/3`` s in a worker without a
        supervisor: its own lease pass (renewal, then the failover reaper). A supervised
        worker leaves both to its supervisor (``graflow.worker.supervisor``)."""
        if leases.installed() is not None:
            return
        self.own_reaper().run_once(self.own_lease_members(), [self.name])

    def own_reaper(self) -> Any:
        from graflow.worker.failover import Reaper

        if self._reaper is None:
            self._reaper = Reaper(self.connection, self.queue_names(), heartbeat=self.lease_seconds,
                                  max_redeliveries=self.max_redeliveries, name=self.name,
                                  prefix=self.key_prefix)  # fmt: skip
        return self._reaper

    def own_lease_members(self) -> list[str]:
        execution, job = self.execution, self.current_job
        if self._lease_active and execution is not None and job is not None and bookkeeping.is_graflow_id(job.id):
            return [execution.composite_key]
        return []

    def hand_back(self, job: Job) -> Job | None:
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
                               leases_key=self.leases_key)  # fmt: skip
            return None
        return hand_back_job(self, job)

    # ------------------------------------------------------------ properties
    @property
    def refresh_interval(self) -> float:
        """Seconds between lease refreshes: a third of the lease."""
        return self.lease_seconds / 3.0

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

    # ---------------------------------------------------------------- leases
    @property
    def bookkeeping_ttl(self) -> int:
        """TTL of rq's bookkeeping keys while a job runs (the execution, the worker key).

        Refreshed every ``WORKER_KEY_BEAT`` s; the margin keeps them readable through a
        task that holds the GIL for a minute or two (liveness is the lease's job, not theirs).
        """
        return math.ceil(self.lease_seconds) + 120

    def get_heartbeat_ttl(self, job: Job) -> int:
        return self.bookkeeping_ttl

    @property
    def leases_key(self) -> str:
        return keys.leases(self.key_prefix)

    def rq_lease_score(self) -> float:
        """rq's started-registry score for a job that is not graflow's: rq's own clock rule."""
        return time.time() + self.lease_seconds

    def _write_rq_lease(self, pipeline: Any, job: Job, execution: Execution) -> None:
        # XX never creates anything: a refresh racing with the job's clean-up cannot
        # resurrect a finished entry.
        pipeline.zadd(job.started_job_registry.key, {execution.composite_key: self.rq_lease_score()}, xx=True)

    def _publish_lease(self, member: str | None) -> None:
        slot = leases.installed()
        if slot is not None:
            slot.publish(member)

    def prepare_execution(self, job: Job) -> Execution:
        """rq's ``prepare_execution`` and ``prepare_job_execution`` in one atomic step, with
        the first lease at ``now + heartbeat`` (``bookkeeping.prepare``); nothing to write
        for a job ``bookkeeping.take`` dequeued already started."""
        if self._taken_job_id == job.id and self.execution is not None:
            self._taken_job_id = None
        else:
            execution = bookkeeping.prepare(self, job)
            if execution is None:
                raise StartedElsewhere(job.id)
            self.execution = execution
        self._prepared_job_id = job.id
        self.current_job = job
        self._lease_active = True
        if bookkeeping.is_graflow_id(job.id):
            self._publish_lease(self.execution.composite_key)  # the supervisor renews it from now on
        return self.execution

    def beat(self) -> None:
        """One heartbeat, every ``heartbeat/3`` s: the stop checks of running attempts
        (cancel), the lease of a job that is not graflow's, and every ``WORKER_KEY_BEAT``
        rq's worker key and the execution TTLs. Nothing at all when idle in between."""
        job, execution = self.current_job, self.execution
        moment = time.monotonic()
        key_due = moment - self._key_beat_at >= WORKER_KEY_BEAT
        running = self._lease_active and job is not None and execution is not None
        with self.connection.pipeline(transaction=False) as pipeline:
            if key_due:
                self.heartbeat(pipeline=pipeline)
                if running:
                    ttl = self.get_heartbeat_ttl(job)  # type: ignore[arg-type]
                    pipeline.expire(execution.key, ttl)  # type: ignore[union-attr]
                    pipeline.expire(ExecutionRegistry.key_template.format(job.id), ttl + 60)  # type: ignore[union-attr]
            if running and not bookkeeping.is_graflow_id(job.id):  # type: ignore[union-attr]
                self._write_rq_lease(pipeline, job, execution)  # type: ignore[arg-type]
            # Has the run of a running attempt ended (cancel)? Then stop that attempt.
            horse_job = job if self.fork and self.horse_pid and self._lease_active else None
            checks = attempt_watch.StopChecks(pipeline, horse_job)
            results = pipeline.execute() if len(pipeline) else []
        checks.apply(results, self.kill_horse)
        if key_due:
            self._key_beat_at = moment
            if results and results[0] == 1:  # the worker hash had expired: write it again
                self.connection.hset(self.key, mapping={**self.serialize(), "state": self._state})
        self._tick(force=True)

    def maintain_heartbeats(self, job: Job) -> None:
        """rq's parent-side loop (forked mode) calls this every ``heartbeat/3`` s."""
        self.beat()

    def heartbeat(self, timeout: float | None = None, pipeline: Any = None) -> None:
        if pipeline is None and timeout is None and self._ticker is not None:
            # rq's loop beats up to three times per job, two round trips each; the
            # heartbeat thread already keeps the worker key alive.
            return
        # rq passes ``job_monitoring_interval + 60`` (a float here); EXPIRE needs an int.
        super().heartbeat(math.ceil(timeout) if timeout else None, pipeline=pipeline)
        if self.fork and pipeline is None and not self.is_horse:
            self._tick()

    def _tick(self, force: bool = False) -> None:
        moment = time.monotonic()
        if force or moment - self._last_tick >= self.refresh_interval:
            self._last_tick = moment
            try:
                self.on_tick()
            except Exception:
                log.exception("worker %s: on_tick failed", self.name)

    def start_heartbeat_thread(self) -> None:
        if self._ticker is None and not self.fork:
            self._ticker = HeartbeatThread(self)
            self._ticker.start()

    def stop_heartbeat_thread(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.stop()

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
                self.prepare_execution(job)
                ok = bool(self.perform_job(job, queue))
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

    def cleanup_execution(self, job: Job, pipeline: Any) -> None:
        """rq's clean-up of an execution (success and failure paths); the lease goes with it."""
        execution = self.execution
        super().cleanup_execution(job, pipeline)  # clears self.execution
        if execution is not None and bookkeeping.is_graflow_id(job.id):
            pipeline.zrem(self.leases_key, execution.composite_key)

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any) -> None:
        """rq's success handling; a ``result_ttl=0`` job in one round trip (``bookkeeping``)."""
        if not bookkeeping.lean_success(self, job):
            super().handle_job_success(job, queue, started_job_registry)
            return
        outcome = bookkeeping.finish_success(self, job)
        if outcome < 0:  # dependents to enqueue, or no longer "started": rq's own path
            super().handle_job_success(job, queue, started_job_registry)
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
        self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = ""
    ) -> None:
        current = self.current_job
        if self._cold_shutdown and current is not None and current.id == job.id:
            self.hand_back(job)
            return
        exc_string = self._abandoned_reasons.pop(job.id, exc_string)
        super().handle_job_failure(
            job, queue=queue, started_job_registry=started_job_registry, exc_string=exc_string
        )

    def handle_work_horse_killed(self, job: Job, retpid: Any, ret_val: Any, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]
        if not self._cold_shutdown:
            self.on_job_abandoned(job)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.horse_pid:  # rq would kill our own process group for pid 0
            super().kill_horse(sig)

    # ---------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> None:
        # work() calls this after forking rq's scheduler process: starting the
        # heartbeat thread here keeps that fork free of a second thread.
        self.start_heartbeat_thread()
        super()._install_signal_handlers()  # type: ignore[no-untyped-call]
        if self.pending_signals:  # a signal arrived while starting: honour it now
            self.log.info("Worker %s: stop requested during start-up", self.name)
            self._shutdown_requested_date = now() - timedelta(seconds=2)
            self._stop_requested = True
            signal.signal(signal.SIGINT, self.request_force_stop)
            signal.signal(signal.SIGTERM, self.request_force_stop)
            if len(self.pending_signals) > 1:
                self._cold_shutdown = True

    def _shutdown(self) -> None:
        # rq counts the worker busy only once the execution is prepared; a job already
        # dequeued (``current_job``) must also finish rather than be dropped.
        if self.current_job is not None and self.get_state() != WorkerStatus.BUSY:
            self._stop_requested = True
            self.set_shutdown_requested_date()  # type: ignore[no-untyped-call]
            self.stop_scheduler()
            return
        super()._shutdown()  # type: ignore[no-untyped-call]

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Second signal: stop at once; the running job is handed back, exit code 1."""
        requested = self._shutdown_requested_date
        if requested is not None and now() - requested < timedelta(seconds=1):
            # rq's guard: a pool or a terminal may deliver one Ctrl+C twice.
            return
        if not self._cold_shutdown:
            self.log.warning("Worker %s: cold shut down", self.name)
        self._cold_shutdown = True
        if self.fork:
            # The monitor loop sees the horse die and calls handle_job_failure,
            # which hands the job back outside this signal handler.
            self.kill_horse()
            return
        if self._in_job_function:
            self._in_job_function = False
            raise ColdShutdown()

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

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """rq's ``_start_scheduler`` with ``GraflowScheduler`` instead of ``RQScheduler``."""
        self.scheduler = GraflowScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            finally:
                self.scheduler.release_locks()  # type: ignore[no-untyped-call]
                self.scheduler.register_death()
        else:
            self.scheduler.start()

    def stop_scheduler(self) -> None:
        """Signal rq's scheduler process to stop, without rq's ``join``.

        rq joins here, inside the SIGTERM handler: in-process, that would freeze the
        running job for up to a scheduler interval. ``teardown`` joins instead.
        """
        process = self.scheduler._process if self.scheduler else None
        if process is not None and process.pid:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGTERM)

    def teardown(self) -> None:
        self.stop_heartbeat_thread()
        super().teardown()  # type: ignore[no-untyped-call]
        process = self.scheduler._process if self.scheduler else None
        if process is not None and not self.is_horse and not self._cold_shutdown:
            process.join(5)  # it has been told to stop; a cold stop does not wait

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
            result = bookkeeping.take(self)
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
            self.log.info(
                "Worker %s: %s: %s (%s)",
                self.name,
                green(queue.name),
                blue(job.description),
                job.id,
            )
        else:
            self.log.info("Worker %s: %s: %s", self.name, green(queue.name), job.id)
        return result


__all__ = ["ColdShutdown", "GraflowScheduler", "GraflowWorker", "ItimerDeathPenalty"]
