"""rq's per-job bookkeeping in two or three round trips instead of about twenty.

rq 2.12 spends most of a no-op job in Redis: reads before deleting (``job.delete``
fetches every execution, the job's status three times), and one round trip per small
write (worker state, heartbeats, ``PERSIST``). graflow jobs keep no result in rq
(``result_ttl=0``: results live in the run's channel), so for them the whole life of a
job is:

1. **take** (``take``, in-process workers, when a job is waiting): one script pops the
   next job id and starts the job, writing what ``prepare_execution`` and
   ``prepare_job_execution`` write (the execution, the job as started, the worker busy
   on it, the lease, ``PERSIST``), and returns the started job's hash. rq needs five
   round trips for this (dequeue, fetch, two pipelines, ``PERSIST``) and parks the id in
   an intermediate queue in between; here nothing is in flight between the two.
2. Otherwise rq's own (blocking) dequeue, then **start** (``prepare``): the same
   writes, made by rq's own methods on a pipeline, run as one script (``BATCH_SCRIPT``).
3. **success** (``finish_success``): one script does what ``handle_job_success`` does
   for a ``result_ttl=0`` job in about thirteen, with no reads from Python. The job is
   not deleted but kept as rq keeps a finished job, for the worker's
   ``GRAFLOW_FINISHED_JOB_TTL`` seconds (0: deleted, as rq does with ``result_ttl=0``),
   so ``rq info`` and rq-dashboard list completed tasks too: its hash says
   ``finished`` and ``ended_at`` and expires then, and it sits in rq's finished registry
   scored ``now + ttl``, exactly as ``FinishedJobRegistry.add`` scores it (rq 2.12 and
   3). No ``rq:results:`` entry: a graflow job's return value is not its task's result.

The keys, values and registry entries written are rq's own, so ``rq info``,
rq-dashboard and ``rq``'s registry clean-ups see exactly what rq would leave. Failures,
retries, repeats, group jobs and jobs that keep a result take rq's own paths.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from graflow.distributed.rqapi import Job, JobStatus, WorkerStatus, compat, layout
from graflow.distributed.rqapi.compat import LeanJob
from graflow.distributed.rqapi.layout import (
    WORKERS_SUSPENDED,
    Execution,
    ExecutionRegistry,
    now,
    utcformat,
)
from graflow.redisconn import as_text

if TYPE_CHECKING:
    from graflow.distributed.rqapi import Queue
    from graflow.worker.rq_worker import GraflowWorker

# KEYS: the queue keys, in priority order. ARGV: 1 job key prefix, 2 started-registry
# key prefix, 3 execution id, 4 execution key prefix, 5 executions-registry key prefix,
# 6 bookkeeping TTL, 7 executions-registry score, 8 lease seconds, 9 worker key, 10 worker
# name, 11 now (rq's text timestamp), 12 now (unix seconds), 13 "1" to PERSIST the job
# hash, 14 the busy state, 15 the started status, 16 the leases key, 17 rq's started-registry
# score for other jobs, 18 rq 3's executions index of the worker ("" on rq 2, which
# writes the worker hash's current_job fields instead). A graflow job (id ``gf-…``) gets
# its lease on the Redis clock (``graflow.worker.leases``) and a started-registry entry
# that rq's clean-up never expires.
# Pops the first waiting job of the first non-empty queue and starts it as rq's
# prepare_execution + prepare_job_execution would (same keys, fields and values); ids
# whose job hash is gone are dropped, as rq's dequeue drops them. Returns
# {queue key, job id, the started job's hash} or false.
TAKE_SCRIPT = """
for _, queue in ipairs(KEYS) do
  while true do
    local id = redis.call('LPOP', queue)
    if not id then
      break
    end
    local job = ARGV[1] .. id
    local origin = redis.call('HGET', job, 'origin')
    if origin and redis.call('HEXISTS', job, 'data') == 1 then
      local ttl = tonumber(ARGV[6])
      local composite = id .. ':' .. ARGV[3]
      local execution = ARGV[4] .. composite
      local executions = ARGV[5] .. id
      redis.call('HSET', execution, 'id', ARGV[3], 'created_at', ARGV[12],
                 'last_heartbeat', ARGV[12], 'worker_name', ARGV[10])
      if ARGV[18] ~= '' then
        redis.call('HSET', execution, 'job_id', id)
        redis.call('SADD', ARGV[18], composite)
        redis.call('EXPIRE', ARGV[18], ttl + 60)
      end
      redis.call('EXPIRE', execution, ttl)
      redis.call('ZADD', executions, ARGV[7], ARGV[3])
      redis.call('EXPIRE', executions, ttl + 60)
      if string.sub(id, 1, 3) == 'gf-' then
        local t = redis.call('TIME')
        redis.call('ZADD', ARGV[16], tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[8]), composite)
        redis.call('ZADD', ARGV[2] .. origin, '+inf', composite)
      else
        redis.call('ZADD', ARGV[2] .. origin, ARGV[17], composite)
      end
      if ARGV[18] == '' then
        redis.call('HSET', ARGV[9], 'state', ARGV[14], 'current_job', id,
                   'current_job_working_time', 0, 'last_heartbeat', ARGV[11])
      else
        redis.call('HSET', ARGV[9], 'state', ARGV[14], 'last_heartbeat', ARGV[11])
      end
      redis.call('EXPIRE', ARGV[9], ttl)
      redis.call('HSET', job, 'last_heartbeat', ARGV[11], 'status', ARGV[15],
                 'started_at', ARGV[11], 'worker_name', ARGV[10])
      if ARGV[13] == '1' then
        redis.call('PERSIST', job)
      end
      return {queue, id, redis.call('HGETALL', job)}
    end
  end
end
return false
"""

# The commands queued on a redis-py pipeline, run as one script: atomic like MULTI/EXEC,
# but one reply to parse instead of one per command plus the EXEC array. ARGV holds,
# per command, its argument count and then its arguments. With a KEYS[1] (a job hash),
# nothing runs unless that job is still "queued": the start of a job another worker
# started first (see ``prepare``) returns 0. The pseudo-command ``LEASE key seconds
# member`` adds ``member`` to ``key`` scored ``seconds`` past the Redis server's clock.
BATCH_SCRIPT = """
if KEYS[1] and redis.call('HGET', KEYS[1], 'status') ~= 'queued' then
  return 0
end
local i, n = 1, #ARGV
while i <= n do
  local len = tonumber(ARGV[i])
  if ARGV[i + 1] == 'LEASE' then
    local t = redis.call('TIME')
    redis.call('ZADD', ARGV[i + 2], tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[i + 3]), ARGV[i + 4])
  else
    redis.call(unpack(ARGV, i + 1, i + len))
  end
  i = i + len + 1
end
return 1
"""

# KEYS: 1 job, 2 dependents, 3 dependencies, 4 started registry, 5 execution registry,
# 6 worker, 7 rq:suspended, 8 the leases, 9 the finished registry. ARGV: 1 job id, 2 this
# execution's id ("" if none), 3 seconds worked, 4 execution key prefix, 5 worker state to
# set ("" for none), 6 rq 3's executions index of the worker ("" on rq 2), 7 seconds to
# keep the finished job (0: delete it), 8 the finished status, 9 ended_at (rq's text
# timestamp), 10 its finished-registry score (rq's: now + ttl, whole seconds).
# Returns -1 when rq's own path must run instead (nothing done: the job has dependents
# to enqueue, or was moved out of "started", e.g. canceled, and sits in another
# registry), else 0/1 for "workers are suspended" (``rq suspend``), read in the same step.
SUCCESS_SCRIPT = """
if redis.call('SCARD', KEYS[2]) > 0 then
  return -1
end
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'started' then
  return -1
end
local ids = redis.call('ZRANGE', KEYS[5], 0, -1)
if ARGV[2] ~= '' then
  table.insert(ids, ARGV[2])
end
for _, id in ipairs(ids) do
  local composite = ARGV[1] .. ':' .. id
  redis.call('ZREM', KEYS[4], composite)
  redis.call('ZREM', KEYS[8], composite)
  redis.call('DEL', ARGV[4] .. composite)
  if ARGV[6] ~= '' then
    redis.call('SREM', ARGV[6], composite)
  end
end
local keep = tonumber(ARGV[7])
if keep > 0 then
  redis.call('HSET', KEYS[1], 'status', ARGV[8], 'ended_at', ARGV[9], 'last_heartbeat', ARGV[9])
  redis.call('EXPIRE', KEYS[1], keep)
  redis.call('ZADD', KEYS[9], ARGV[10], ARGV[1])
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[5])
else
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
end
redis.call('HINCRBY', KEYS[6], 'successful_job_count', 1)
redis.call('HINCRBYFLOAT', KEYS[6], 'total_working_time', ARGV[3])
redis.call('HDEL', KEYS[6], 'current_job')
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[6], 'state', ARGV[5])
end
return redis.call('EXISTS', KEYS[7])
"""


class GraflowJob(LeanJob):
    """The job class of a ``GraflowWorker`` (``compat.LeanJob``: no second ``PERSIST`` on rq 2)."""


def lean_success(worker: GraflowWorker, job: Job) -> bool:
    """Whether ``finish_success`` may handle this job: rq would delete it at once."""
    return (
        job.get_result_ttl(worker.default_result_ttl) == 0
        and not job.repeats_left
        and not job.group_id
        and not getattr(job, "rate_limit_key", None)  # rq 3: its slot is released by rq's path
    )


def is_graflow_id(job_id: str) -> bool:
    """A graflow job (``graflow.distributed.dispatch`` names them ``gf-…``): its lease is graflow's."""
    return job_id.startswith("gf-")


def started_registry_key(job: Job) -> str:
    """``job.started_job_registry.key`` without building the registry object."""
    return layout.started_key(job.origin)


def prepare(worker: GraflowWorker, job: Job) -> Execution | None:
    """Start ``job`` in one atomic step: the execution and its lease, the job as started,
    the worker busy on it (rq: ``prepare_execution`` + ``prepare_job_execution`` +
    ``PERSIST``). The commands are rq's own, queued on a pipeline and run as one script.

    A graflow job's lease (``{job_id}:{execution_id}`` in ``keys.leases``) is created
    with the deadline ``heartbeat`` past the Redis server's clock (``graflow.worker.leases``).

    Returns None, having written nothing, when the job is no longer "queued": this
    worker stalled between rq's dequeue and this step long enough for the reaper to put
    the job back (``Reaper._sweep_intermediate``) and another worker started it. Only
    one of them may run it.
    """
    ttl = worker.get_heartbeat_ttl(job)
    execution = Execution(
        id=uuid4().hex, job_id=job.id, connection=job.connection, worker_name=worker.name
    )
    moment = now()
    with worker.connection.pipeline(transaction=False) as pipe:
        execution.save(ttl=ttl, pipeline=pipe)
        ExecutionRegistry(job_id=job.id, connection=pipe).add(
            execution=execution, ttl=ttl, pipeline=pipe
        )
        if is_graflow_id(job.id):
            # The lease, on the Redis clock (``BATCH_SCRIPT``'s LEASE); rq's entry never expires.
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "LEASE", worker.leases_key, repr(worker.lease_seconds), execution.composite_key
            )
            pipe.zadd(started_registry_key(job), {execution.composite_key: "+inf"})
        else:
            pipe.zadd(started_registry_key(job), {execution.composite_key: worker.rq_lease_score()})
        mapping: dict[Any, Any] = {"state": WorkerStatus.BUSY, "last_heartbeat": utcformat(moment)}
        index = layout.worker_executions_key(worker.name)
        if index is None:  # rq 2
            mapping.update(current_job=job.id, current_job_working_time=0)
        else:
            pipe.sadd(index, execution.composite_key)
            pipe.expire(index, ttl + 60)
        pipe.hset(worker.key, mapping=mapping)
        pipe.expire(worker.key, ttl)
        job.prepare_for_execution(worker.name, pipeline=pipe)
        if len(worker.queues) == 1:  # rq's perform_job: single-queue workers dequeue via LMOVE
            pipe.lrem(layout.intermediate_key(job.origin), 1, job.id)
        pipe.persist(job.key)  # rq 2: Job.perform's first step, rq 3: prepare_job_execution's
        if not run_atomically(worker.batch_script, pipe, unless_started=job.key):
            return None
    _mark_busy(worker, job, moment)
    return execution


def _mark_busy(worker: GraflowWorker, job: Job, moment: Any) -> None:
    """The worker's memory of a start (what rq's own start methods set)."""
    worker.last_heartbeat = moment
    if layout.WRITES_WORKER_CURRENT_JOB:
        setattr(worker, "current_job_working_time", 0)  # noqa: B010 - rq 2 only
    worker._state = WorkerStatus.BUSY
    if isinstance(job, LeanJob):
        job.persisted = True


def run_atomically(script: Any, pipe: Any, unless_started: str | None = None) -> bool:
    """Run the commands queued on ``pipe`` (not executed) in one ``BATCH_SCRIPT`` call;
    with ``unless_started`` (a job key), only if that job is still "queued"."""
    argv: list[Any] = []
    for args, _options in pipe.command_stack:
        argv.append(len(args))
        argv.extend(args)
    return bool(script(keys=[unless_started] if unless_started else [], args=argv))


def finish_success(worker: GraflowWorker, job: Job, execution: Execution | None) -> int:
    """rq's ``handle_job_success`` for a ``result_ttl=0`` job, in one script.

    Keeps the job hash as finished for ``worker.finished_job_ttl`` seconds, in rq's
    finished registry (0: deletes it), deletes its dependents/dependencies keys, its
    executions (hashes, started-registry entries, execution registry), clears the
    worker's current job, counts the success and the working time, and sets the worker
    idle. Returns -1 when nothing was done and rq's own path must run (the job has
    dependents to enqueue, or is no longer "started", e.g. canceled or given up by the
    reaper meanwhile), else whether ``rq suspend`` is in force (1) or not (0).
    """
    assert job.started_at is not None and job.ended_at is not None
    worked = (job.ended_at - job.started_at).total_seconds()
    state = "" if worker.is_horse else WorkerStatus.IDLE.value
    keys = [
        job.key,
        job.dependents_key,
        job.dependencies_key,
        started_registry_key(job),
        layout.executions_key(job.id),
        worker.key,
        WORKERS_SUSPENDED,
        worker.leases_key,
        layout.finished_key(job.origin),
    ]
    index = layout.worker_executions_key(worker.name) or ""
    keep = worker.finished_job_ttl
    args: list[str | int] = [
        job.id, execution.id if execution else "", repr(worked), layout.EXECUTION_PREFIX, state, index,
        keep, JobStatus.FINISHED.value, utcformat(job.ended_at), int(time.time()) + keep,
    ]  # fmt: skip
    outcome = int(worker.success_script(keys=keys, args=args, client=worker.hot_connection))
    if outcome >= 0:
        compat.set_execution(worker, None)
        if state:
            worker._state = state
    return outcome


def take(worker: GraflowWorker) -> tuple[Job, Queue] | None:
    """Dequeue and start the first waiting job in one round trip (``TAKE_SCRIPT``), as
    ``Queue.dequeue_any`` (without blocking) followed by ``prepare`` would; None when the
    queues are empty. The job comes back started, its execution the worker's
    (``compat.current_execution``).
    """
    ttl = worker.bookkeeping_ttl
    execution_id = uuid4().hex
    moment = now()
    found = worker.take_script(
        keys=[q.key for q in worker._ordered_queues],
        args=[
            worker.job_class.redis_job_namespace_prefix,
            layout.STARTED_PREFIX,
            execution_id,
            layout.EXECUTION_PREFIX,
            layout.EXECUTIONS_PREFIX,
            ttl,
            int(time.time()) + ttl + 60,  # ExecutionRegistry.add's score
            repr(worker.lease_seconds),
            worker.key,
            worker.name,
            utcformat(moment),
            moment.timestamp(),
            "1",  # PERSIST: rq 2's Job.perform, rq 3's prepare_job_execution
            WorkerStatus.BUSY.value,
            JobStatus.STARTED.value,
            worker.leases_key,
            worker.rq_lease_score(),
            layout.worker_executions_key(worker.name) or "",
        ],
        client=worker.hot_connection,
    )
    if not found:
        return None
    queue_key, job_id, flat = as_text(found[0]), as_text(found[1]), found[2]
    # In-process only (no fork): the job's steps run on this process's own connection.
    job = worker.job_class(job_id, connection=worker.hot_connection, serializer=worker.serializer)
    job.restore(dict(zip(flat[::2], flat[1::2], strict=True)))  # the hash as started
    execution = Execution(
        id=execution_id, job_id=job_id, connection=worker.connection, worker_name=worker.name
    )
    execution.created_at = execution.last_heartbeat = moment
    compat.set_execution(worker, execution)
    _mark_busy(worker, job, moment)
    return job, worker.queue_for_key(queue_key)


__all__ = [
    "BATCH_SCRIPT",
    "SUCCESS_SCRIPT",
    "TAKE_SCRIPT",
    "GraflowJob",
    "finish_success",
    "is_graflow_id",
    "lean_success",
    "prepare",
    "run_atomically",
    "started_registry_key",
    "take",
]
