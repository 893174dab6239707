"""Every use graflow makes of rq beyond its public API, why it stays, and its guard.

"Private" here: underscore names, undocumented modules (``rq.executions``,
``rq.intermediate_queue``, ``rq.worker_registration``, ``rq.suspension``, ``rq.utils``,
``rq.defaults``), overrides of undocumented ``Worker``/``RQScheduler`` methods, and
direct reads or writes of rq's Redis layout. Each entry names the tests that fail when
rq changes what it relies on (``tests/worker/test_rq_boundary.py`` checks that every
named test exists). The signatures graflow overrides or calls are pinned below, per
rq major.
"""

from __future__ import annotations

from typing import NamedTuple


class PrivateUse(NamedTuple):
    name: str
    where: str
    why: str
    #: ``path::test_name`` of the tests that fail when rq changes it.
    tests: tuple[str, ...]


_BOUNDARY = "tests/worker/test_rq_boundary.py::"
_LEAN = "tests/worker/test_worker_bookkeeping.py::"

PRIVATE_USES: tuple[PrivateUse, ...] = (
    PrivateUse(
        "lean bookkeeping: rq's start and success writes re-done in Lua",
        "graflow/worker/bookkeeping.py (TAKE_SCRIPT, BATCH_SCRIPT, SUCCESS_SCRIPT)",
        "A graflow job costs rq 2 round trips (take, success) instead of 17 to 27 on rq's own "
        "path, about 5x the throughput (benchmarks/distributed.py, docs/rq.md). The scripts "
        "write rq's job hash fields, execution hash, executions registry, started registry, "
        "worker hash, rq 3's worker executions index, the intermediate list and PERSIST "
        "exactly as rq would, so rq info, rq-dashboard and rq's clean-ups see rq's records; "
        "a completed job is kept as rq keeps one with a result_ttl (status, ended_at, TTL, "
        "the finished registry entry scored as FinishedJobRegistry.add scores it).",
        (
            _LEAN + "test_a_started_job_looks_as_rq_would_leave_it",
            _LEAN + "test_success_leaves_nothing_and_failure_is_in_the_failed_registry",
            _LEAN + "test_a_finished_job_is_kept_as_rq_keeps_one",
            _LEAN + "test_round_trips_per_job",
            _BOUNDARY + "test_rq_info_sees_a_lean_job_as_rq_would",
        ),
    ),
    PrivateUse(
        "overrides of undocumented Worker methods",
        "graflow/worker/rq_worker.py, rq_leases.py, rq_dequeue.py (GraflowWorker); "
        "signatures in WORKER_SIGNATURES",
        "Leases on the Redis clock, in-process execution, two-stage signals, hand-back and "
        "the lean steps hook into rq's worker loop; rq has no public hooks for these. "
        "rq 3 added the execution argument (compat.with_execution absorbs it).",
        (_BOUNDARY + "test_rq_method_signatures_are_the_pinned_ones",),
    ),
    PrivateUse(
        "private Worker attributes",
        "Worker._state, _stop_requested, _shutdown_requested_date, _ordered_queues, "
        "scheduler._process; rq 3 executions dict / rq 2 execution attribute (compat)",
        "Two-stage stop, the take path's queue order, a scheduler that is signalled without "
        "a join inside the signal handler, and the running execution without rq 3's "
        "Redis fallback of the execution property.",
        (_BOUNDARY + "test_private_worker_attributes_exist",),
    ),
    PrivateUse(
        "RQScheduler internals",
        "graflow/worker/scheduler.py (_install_signal_handlers, _stop_requested), "
        "graflow/worker/delayed.py (acquire_locks, enqueue_scheduled_jobs, release_locks)",
        "A scheduler that dies with its worker and survives a Redis outage; due delayed "
        "jobs moved in-process by burst and thread workers under rq's own lock.",
        (
            _BOUNDARY + "test_rq_method_signatures_are_the_pinned_ones",
            _BOUNDARY + "test_private_worker_attributes_exist",
        ),
    ),
    PrivateUse(
        "UnixSignalDeathPenalty._timeout",
        "graflow/worker/heartbeat.py (ItimerDeathPenalty)",
        "A sub-second SIGALRM for rq's monitor loop (signal.alarm takes whole seconds).",
        (_BOUNDARY + "test_private_worker_attributes_exist",),
    ),
    PrivateUse(
        "rq 2 only: rq.job._job_stack, Job._execute, Job._result",
        "graflow/distributed/rqapi/compat.py (LeanJob.perform)",
        "rq 2's Job.perform begins with a PERSIST the start step already sent: one round "
        "trip per job saved. rq 3 moved the PERSIST to prepare_job_execution, where the "
        "lean start step replaces it.",
        (_BOUNDARY + "test_job_perform_persists_as_compat_assumes",),
    ),
    PrivateUse(
        "rq.executions: Execution, ExecutionRegistry, the execution key and member layout",
        "layout.py; graflow/worker/bookkeeping.py, failover.py (record_abandoned), "
        "rq_leases.py (execution TTLs)",
        "The lean steps write executions; the reaper deletes a lost worker's executions "
        "(members job_id:execution_id) as rq would when the job ends.",
        (_BOUNDARY + "test_execution_layout_is_rqs",),
    ),
    PrivateUse(
        "rq.intermediate_queue: the list rq's dequeue parks a job id on",
        "layout.intermediate_key; graflow/worker/leases.py (PASS), failover.py "
        "(_REQUEUE_STUCK), bookkeeping.py (LREM at start)",
        "Jobs dequeued but never started (a worker lost between dequeue and start) are "
        "put back by the reaper; rq offers no API for them.",
        (_BOUNDARY + "test_rqs_dequeue_parks_the_id_on_the_intermediate_list",),
    ),
    PrivateUse(
        "rq.worker_registration and the worker hash fields",
        "layout.WORKERS_SET, workers_by_queue_key, worker_key; graflow/worker/takeover.py "
        "(birth, death, pid, hostname, queues, successful/failed_job_count)",
        "Taking over the name of a dead worker: rq offers no API for 'workers by name, dead "
        "or alive', and drops a registration only from the worker itself.",
        (_BOUNDARY + "test_worker_registration_layout",),
    ),
    PrivateUse(
        "worker registrations read in pipelines",
        "graflow/distributed/rqapi/workers.py (graflow.distributed.pool_workers: graflow workers): "
        "the registration sets, the worker hash fields rq's Worker.refresh reads, rq 3's executions "
        "index or rq 2's current_job field",
        "Worker.all costs a round trip per worker, more on rq 3 for the current job, and drops a "
        "registration whose hash expired (a read that writes, and the one sign of a lost worker); "
        "the view reads every worker in one pipeline and shows such a worker as lost.",
        ("tests/distributed/test_pool_workers.py::test_idle_busy_and_idle_again_as_rq_sees_it",
         "tests/distributed/test_pool_workers.py::test_a_killed_worker_is_lost_with_the_attempt_it_ran"),
    ),
    PrivateUse(
        "rq.suspension.WORKERS_SUSPENDED",
        "graflow/worker/bookkeeping.py (SUCCESS_SCRIPT reads it)",
        "`rq suspend` is honoured without a round trip of its own per job.",
        (
            _BOUNDARY + "test_suspension_flag_is_the_one_rq_suspend_sets",
            _LEAN + "test_suspension_read_by_the_success_step_stops_a_burst_worker",
        ),
    ),
    PrivateUse(
        "rq.utils.utcformat and utcparse",
        "graflow/worker/bookkeeping.py (timestamps in job and worker hashes), takeover.py",
        "The lean steps write rq's text timestamps; takeover reads a worker's birth.",
        (_BOUNDARY + "test_timestamps_are_in_rqs_format",),
    ),
    PrivateUse(
        "rq.defaults logging formats",
        "graflow/worker/rq_worker.py (defaults of the work and _start_scheduler overrides)",
        "The overrides keep rq's defaults.",
        (_BOUNDARY + "test_rq_method_signatures_are_the_pinned_ones",),
    ),
    PrivateUse(
        "Queue._enqueue_job",
        "graflow/distributed/dispatch.py (enqueue: every activation handed to rq)",
        "The public Queue.enqueue_job runs a transaction of its own (MULTI, SADD rq:queues, "
        "EXEC) before queueing even a job without dependencies: one more round trip per "
        "task hop. _enqueue_job writes the job into the caller's pipeline only; the worker "
        "registers its queues in rq:queues once at start-up (register_queues).",
        (_BOUNDARY + "test_rq_method_signatures_are_the_pinned_ones",
         _BOUNDARY + "test_dispatch_costs_one_round_trip_per_batch"),
    ),
    PrivateUse(
        "queue keys written or read directly",
        "layout.QUEUES_SET (graflow/worker/runner.py register_queues: SADD); "
        "graflow/queue/distributed.py (LPOP of the queue list, then the job hash deleted)",
        "rq info and rq-dashboard list an idle pool's queues; the in-process queue adapter "
        "pops without rq's Queue.pop_job_id, which fails on an empty queue.",
        (_BOUNDARY + "test_queue_keys_are_rqs",),
    ),
    PrivateUse(
        "queue gauges read from rq's keys at scrape time",
        "layout.queue_key, started_key, scheduled_key, JOB_PREFIX (graflow/worker/pool_gauges.py: "
        "LLEN, LINDEX 0 and the head job's enqueued_at, ZCARD of the started and scheduled registries)",
        "One round trip per scrape for every served queue's depth, oldest job's age, running and "
        "delayed jobs; rq's Queue.count, StartedJobRegistry.count and job fetches would cost "
        "several per queue and clean registries as a side effect.",
        ("tests/worker/test_metrics.py::test_pool_gauges_read_rqs_layout",),
    ),
)


#: Parameters (``name=default``) of the rq methods graflow overrides or calls, besides
#: ``self``, identical on rq 2.12 and 3.x.
SIGNATURES: dict[str, str] = {
    "Worker.prepare_execution": "job",
    "Worker.prepare_job_execution": "job, remove_from_intermediate_queue=False",
    "Worker.execute_job": "job, queue",
    "Worker.handle_execution_ended": "job, queue, heartbeat_ttl",
    "Worker.handle_exception": "job, *exc_info",
    "Worker.handle_work_horse_killed": "job, retpid, ret_val, rusage",
    "Worker.kill_horse": "sig=<Signals.SIGKILL: 9>",
    "Worker.set_state": "state, pipeline=None",
    "Worker.check_for_suspension": "burst",
    "Worker.heartbeat": "timeout=None, pipeline=None",
    "Worker.bootstrap": "logging_level='INFO', date_format='%H:%M:%S', log_format='%(asctime)s %(message)s'",
    "Worker.clean_registries": "",
    "Worker._start_scheduler": "burst=False, logging_level='INFO', date_format='%H:%M:%S', "
    "log_format='%(asctime)s %(message)s'",
    "Worker.stop_scheduler": "",
    "Worker.teardown": "",
    "Worker.work": "burst=False, logging_level=None, date_format='%H:%M:%S', log_format='%(asctime)s %(message)s', "
    "max_jobs=None, max_idle_time=None, with_scheduler=False, dequeue_strategy=<DequeueStrategy.DEFAULT: 'default'>",
    "Worker.dequeue_job_and_maintain_ttl": "timeout, max_idle_time=None",
    "Worker._install_signal_handlers": "",
    "Worker._shutdown": "",
    "Worker.unsubscribe": "",
    "Worker.request_force_stop": "signum, frame",
    "Worker.reorder_queues": "reference_queue",
    "Worker.get_redis_server_version": "",
    "Worker.procline": "message",
    "Worker.set_shutdown_requested_date": "",
    "Worker.increment_failed_job_count": "pipeline=None",
    "Queue._enqueue_job": "job, pipeline=None, at_front=False, unique=False",
    "RQScheduler._install_signal_handlers": "",
    "RQScheduler.heartbeat": "",
    "RQScheduler.start": "",
    "RQScheduler.work": "",
    "RQScheduler.acquire_locks": "auto_start=False",
    "RQScheduler.enqueue_scheduled_jobs": "",
    "RQScheduler.release_locks": "",
    "UnixSignalDeathPenalty.setup_death_penalty": "",
    "UnixSignalDeathPenalty.cancel_death_penalty": "",
    "UnixSignalDeathPenalty.handle_death_penalty": "signum, frame",
}

#: The ones that differ between the majors (``compat`` absorbs the difference).
SIGNATURES_BY_MAJOR: dict[int, dict[str, str]] = {
    2: {
        "Worker.perform_job": "job, queue",
        "Worker.handle_job_success": "job, queue, started_job_registry",
        "Worker.handle_job_failure": "job, queue, started_job_registry=None, exc_string=''",
        "Worker.cleanup_execution": "job, pipeline",
        "Worker.maintain_heartbeats": "job",
        "Worker.get_heartbeat_ttl": "job",
    },
    3: {
        "Worker.perform_job": "job, queue, execution",
        "Worker.handle_job_success": "job, queue, started_job_registry, execution",
        "Worker.handle_job_failure": "job, queue, started_job_registry=None, exc_string='', execution=None",
        "Worker.cleanup_execution": "job, pipeline, execution=None",
        "Worker.maintain_heartbeats": "job, execution",
        "Worker.get_heartbeat_ttl": "job, working_time=0.0",
    },
}

__all__ = ["PRIVATE_USES", "SIGNATURES", "SIGNATURES_BY_MAJOR", "PrivateUse"]
