"""Failover: re-run the tasks of dead workers, fast and exactly once per attempt.

A running job's lease lives on the Redis server's clock and is renewed by the worker's
supervisor (``graflow.worker.leases``). Each supervisor's lease pass (every heartbeat/3)
returns the leases that ran out, already claimed for it: each belongs to a lost worker
(a whole host, or a stopped supervisor: a dead child is handed back by its supervisor at
once). The activation goes back to the session's pending set as attempt + 1 (one
atomic, idempotent step), the new job is enqueued, and the old job is recorded in the
failed registry as abandoned. rq's own cleanup would only mark it failed, minutes later.

After ``max_redeliveries`` losses the task is a poison task: it fails the run (or
its branch) with ``WorkerLostError`` instead of killing more workers.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import msgspec
from redis.exceptions import LockError

from graflow import keys
from graflow.defaults import DEFAULT_FAILURE_TTL
from graflow.distributed import dispatch, liveness
from graflow.distributed.rqapi import (
    FailedJobRegistry,
    Job,
    JobStatus,
    JSONSerializer,
    Result,
    StartedJobRegistry,
    layout,
)
from graflow.distributed.session import SessionStore
from graflow.distributed.spec import decode, encode
from graflow.exceptions import WorkerLostError
from graflow.worker import leases, metrics

logger = logging.getLogger("graflow.failover")

#: How long one reaper pass may hold the per-queue lock.
LOCK_SECONDS = 5.0


def is_graflow_job(job: Job) -> bool:
    return job.func_name == dispatch.JOB_FUNCTION and bool(job.args)


def record_abandoned(
    connection: Any, job: Job, reason: str, worker_name: str, pipeline: Any, lease: Any = None,
    leases_key: str | None = None,
) -> None:  # fmt: skip
    """The old job as rq records a failure: status, failed registry, a Result with ``reason``;
    its started-registry entry (``lease``, or found by scanning) and its lease in
    ``leases_key`` go, and its executions are deleted, as rq deletes them when a job ends
    (the lost worker never will; they would outlive the failed job by a minute)."""
    ttl = job.failure_ttl if job.failure_ttl is not None else DEFAULT_FAILURE_TTL
    job.ended_at = job.ended_at or _now()
    job.set_status(JobStatus.FAILED, pipeline=pipeline)
    FailedJobRegistry(job.origin, connection=connection, serializer=JSONSerializer).add(
        job, ttl=ttl, exc_string=reason, pipeline=pipeline
    )
    Result.create_failure(job, ttl, exc_string=reason, worker_name=worker_name, pipeline=pipeline)
    started = StartedJobRegistry(job.origin, connection=connection, serializer=JSONSerializer)
    executions = layout.ExecutionRegistry(job_id=job.id, connection=connection)
    # rq 3: the lost worker's executions index (``rq info``) lists them too.
    index = layout.worker_executions_key(job.worker_name) if job.worker_name else None
    for execution_id in executions.get_execution_ids():
        execution = layout.Execution(id=execution_id, job_id=job.id, connection=connection)
        pipeline.delete(execution.key)
        pipeline.zrem(started.key, execution.composite_key)
        if index is not None:
            pipeline.srem(index, execution.composite_key)
    pipeline.delete(executions.key)
    if lease is not None:
        pipeline.zrem(started.key, lease)
        if leases_key:
            pipeline.zrem(leases_key, lease)
        return
    for member in connection.zrange(started.key, 0, -1):
        text = member.decode() if isinstance(member, bytes) else str(member)
        if text == job.id or text.startswith(f"{job.id}:"):
            pipeline.zrem(started.key, member)


def _now() -> Any:
    return layout.now()


_ALREADY = {"dup": "done"}


def redeliver(
    connection: Any, job: Job, *, lost_worker: str, why: str, max_redeliveries: int, reaper: str,
    lease: Any = None, record: bool = True, timed_out: float | None = None, leases_key: str | None = None,
    cause: str = "worker_died",
) -> str:
    """Re-enqueue the activation of a graflow job whose attempt was lost; returns the
    reason recorded on the old job (``abandoned: worker … re-enqueued as attempt N``), unless
    ``record`` is False (rq's own clean-up, which records the failure itself, called us).

    ``timed_out`` (seconds): the attempt's process was killed because it ran past that
    timeout (``graflow.worker.hard_timeout``). Not a lost worker: the poison-task limit
    does not apply and the redelivery is not counted; the next attempt carries the mark
    and fails at once with ``TaskTimeoutError`` through the task's retry policy.
    ``cause``: why, for the redelivery counter (``metrics.CAUSES``)."""
    wire = decode(job.args[0])
    store = SessionStore(connection, wire.key_prefix, wire.session_id)
    if timed_out:
        nxt = msgspec.structs.replace(
            wire, attempt=wire.attempt + 1, timed_out=float(timed_out), enqueued_at=time.time(), not_before=0.0
        )
        return _requeue(connection, job, wire, nxt, store, lost_worker, why, reaper, lease, record,
                        ", which fails with TaskTimeoutError", leases_key, "timed_out")
    if wire.redeliveries >= max_redeliveries:
        from graflow.distributed.pool_engine import fail_activation

        error = WorkerLostError(wire.task_id, wire.attempt, lost_worker)
        # The failure step does nothing to an activation that completed (its lost attempt
        # died after the commit: the step re-drives the hand-over instead) or a run that ended.
        status = str(fail_activation(store, wire, error, None).get("status"))
        if status in ("dup", "final", "missing", "superseded"):
            reason = f"abandoned: worker {lost_worker} {why}; activation already {_ALREADY.get(status, status)}"
        else:
            reason = f"abandoned: worker {lost_worker} {why}; poison task, run failed"
            logger.error("task %s of session %s lost %d times: %s", wire.task_id, wire.session_id, wire.attempt, error)
        if record:
            with connection.pipeline() as pipe:
                record_abandoned(connection, job, reason, reaper, pipe, lease, leases_key)
                pipe.execute()
        return reason
    nxt = msgspec.structs.replace(
        wire, attempt=wire.attempt + 1, redeliveries=wire.redeliveries + 1, enqueued_at=time.time(), not_before=0.0
    )
    return _requeue(connection, job, wire, nxt, store, lost_worker, why, reaper, lease, record,
                    leases_key=leases_key, cause=cause)


def _requeue(
    connection: Any, job: Job, wire: Any, nxt: Any, store: SessionStore, lost_worker: str, why: str,
    reaper: str, lease: Any, record: bool, note: str = "", leases_key: str | None = None,
    cause: str = "worker_died",
) -> str:  # fmt: skip
    """The session's redelivery step for ``nxt``, the old job recorded as abandoned, the
    hand-over to rq; returns the reason recorded."""
    outcome = store.redeliver(wire.spec_id, wire.attempt, encode(nxt), lost_worker)
    status = str(outcome.get("status"))
    reason = f"abandoned: worker {lost_worker} {why}; re-enqueued as attempt {nxt.attempt}{note}"
    if status not in ("ok", "requeued"):
        reason = f"abandoned: worker {lost_worker} {why}; activation already {status}"
    if record:
        with connection.pipeline() as pipe:
            record_abandoned(connection, job, reason, reaper, pipe, lease, leases_key)
            pipe.execute()
    hand_over(connection, wire, outcome)
    if status in ("ok", "requeued"):
        metrics.redelivered(connection, wire, cause)
    log = logger.warning if status in ("ok", "requeued") else logger.info
    log("task %s (session %s): %s", wire.task_id, wire.session_id[:8], reason)
    return reason


def hand_over(connection: Any, wire: Any, outcome: dict[str, Any]) -> None:
    """Finish what a redelivery step found undone: the deferred checkpoint the lost
    attempt committed but did not write (before its successors reach rq, so they are
    listed as pending in it), then the hand-over to rq."""
    status = outcome.get("status")
    if status in ("done", "final") and outcome.get("checkpoint"):
        from graflow.distributed.lost_checkpoint import write_lost_checkpoint

        try:
            write_lost_checkpoint(connection, wire, outcome["checkpoint"], finished=status == "final")
        except Exception:
            logger.exception("session %s: could not write the checkpoint of lost task %s",
                             wire.session_id, wire.task_id)  # fmt: skip
    enqueue = outcome.get("enqueue") or []
    if enqueue:
        dispatch.enqueue(connection, enqueue, skip_existing=True)


class Reaper:
    """One lease pass (``leases.LeasePass``) and what it found: the tasks of expired leases
    redelivered, jobs stuck between dequeue and start put back on their queue."""

    def __init__(self, connection: Any, queues: list[str], *, heartbeat: float, max_redeliveries: int,
                 name: str, prefix: str = keys.DEFAULT_PREFIX) -> None:  # fmt: skip
        self.connection = connection
        self.queues = list(queues)
        self.heartbeat = heartbeat
        self.max_redeliveries = max_redeliveries
        self.name = name
        self.prefix = prefix
        self.leases_key = keys.leases(prefix)
        self._pass = leases.LeasePass(connection, prefix, self.queues, heartbeat,
                                      stuck_after=max(0.5, STUCK_AFTER * heartbeat))  # fmt: skip
        self._swept_at: float | None = None

    def run_once(self, members: Iterable[str] = (), alive: Iterable[str] = ()) -> int:
        """One pass: renew ``members`` (leases of live workers), mark the workers named in
        ``alive`` alive, then act on what expired; returns how many jobs went back."""
        found = self._pass.run(list(members), list(alive))
        reaped = 0
        for member in found.expired:
            try:
                reaped += self._reap(member)
            except Exception:  # its claim runs out: a later pass retries
                logger.exception("reaper %s: could not redeliver the job of lease %s", self.name, member)
        for listed, job_id in found.stuck:
            reaped += self._requeue_stuck(listed, job_id)
        moment = time.monotonic()
        if self._swept_at is None or moment - self._swept_at >= liveness.SWEEP_EVERY:
            self._swept_at = moment
            try:
                # Repairs the live-run list after a crash between a run's end and its release
                # (at most once a minute per prefix; see graflow.distributed.liveness).
                liveness.sweep(self.connection, self.prefix)
            except Exception:
                logger.exception("reaper %s: could not sweep the live runs of %s", self.name, self.prefix)
        return reaped

    def _reap(self, member: str) -> int:
        """Redeliver the job of expired lease ``member`` if it still runs, as rq sees it."""
        from graflow.worker.bookkeeping import started_registry_key

        job_id = member.rsplit(":", 1)[0]
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
        except Exception:
            job = None
        started = started_registry_key(job) if job is not None else ""
        if job is None or not is_graflow_job(job) or self.connection.zscore(started, member) is None:
            # Its job is gone, or ended without taking its lease along: nothing to re-run.
            self.connection.zrem(self.leases_key, member)
            return 0
        lock = self.connection.lock(keys.reaper_lock(self.prefix, job.origin), timeout=LOCK_SECONDS)
        if not lock.acquire(blocking=False):
            return 0  # a hand-back of that queue is under way; the claim runs out, a later pass looks again
        try:
            if self.connection.zscore(started, member) is None:
                self.connection.zrem(self.leases_key, member)  # handed back meanwhile
                return 0
            redeliver(self.connection, job, lost_worker=job.worker_name or "unknown", why="lost", lease=member,
                      max_redeliveries=self.max_redeliveries, reaper=self.name,
                      leases_key=self.leases_key, cause="lease_expired")  # fmt: skip
            metrics.lease_expired()
        finally:
            with contextlib.suppress(LockError):  # it outlived LOCK_SECONDS: already free
                lock.release()
        return 1

    def _requeue_stuck(self, listed: str, job_id: str) -> int:
        """Put back a graflow job a worker dequeued but never started (it died in between).

        rq's blocking dequeue moves a job id to ``rq:queue:Q:intermediate``; the worker then
        starts it (lease, status "started", off the intermediate list) in one step. A worker
        lost between the two leaves a queued job that nobody holds and that has no lease to
        expire; rq's own clean-up only marks it failed, minutes later. A graflow job still
        there, still "queued", ``STUCK_AFTER`` × heartbeat after a pass first saw it, goes
        back to the head of its queue, same job id (it never started: no attempt is used).
        """
        queue_key = listed.removesuffix(":intermediate")
        back = self.connection.eval(_REQUEUE_STUCK, 3, listed, queue_key, Job.key_for(job_id), job_id)
        if back != 1:
            return 0
        logger.warning("reaper %s: job %s was dequeued by a lost worker before it started; "
                       "back on queue %s", self.name, job_id, queue_key.rsplit(":", 1)[-1])  # fmt: skip
        return 1


#: A job dequeued but not started for this many heartbeats belongs to a lost worker (a
#: live one starts it within milliseconds); the first sighting is up to heartbeat/3 late,
#: so a stuck job is back on its queue within about 4/3 × heartbeat, like a lost lease.
STUCK_AFTER = 2.0 / 3.0

# KEYS: 1 intermediate list, 2 queue list, 3 job hash; ARGV: 1 job id. Re-queues a job
# still "queued" (not started by anyone) at the head of its queue; 1 if it was.
_REQUEUE_STUCK = """
local status = redis.call('HGET', KEYS[3], 'status')
if status and status ~= 'queued' then return 0 end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if not status then return -1 end
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
"""


def on_failure_callback(job: Job, connection: Any, exc_type: Any, exc_value: Any, traceback: Any) -> None:
    """rq failure callback on graflow jobs: when rq's own cleanup (``rq info``, a dashboard,
    a plain rq worker) abandons a job before the reaper does, redeliver it anyway, with
    the same poison-task limit (the worker's ``--max-redeliveries``); rq records the failure."""
    from graflow.distributed.rqapi import AbandonedJobError

    if isinstance(exc_value, AbandonedJobError) or exc_type is AbandonedJobError:
        from graflow.limits import max_redeliveries

        try:
            limit = max_redeliveries()
            redeliver(connection, job, lost_worker=job.worker_name or "unknown", why="lost (rq's registry clean-up)",
                      max_redeliveries=limit, reaper="rq", record=False, cause="rq_cleanup")  # fmt: skip
        except Exception:
            logger.exception("could not redeliver abandoned job %s", job.id)


__all__ = ["Reaper", "hand_over", "is_graflow_job", "on_failure_callback", "record_abandoned", "redeliver"]
