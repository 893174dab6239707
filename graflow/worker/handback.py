"""Handing a running job back to its queue when a worker is stopped hard.

A second SIGTERM/SIGINT must not lose the running task. The job cannot simply be
pushed again under its own id: its hash, execution and registry entries describe the
interrupted attempt. So a copy is enqueued under a new id ``<old_id>-h<n>`` (same
function, arguments, options and meta), and the interrupted job is recorded in the
failed registry with the reason, all in one MULTI/EXEC. graflow's job function reads
the attempt from its own TaskSpec and counts the copy as attempt + 1; the spec itself
is not touched here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from graflow.defaults import DEFAULT_FAILURE_TTL
from graflow.distributed.rqapi import Job, JobStatus, Result
from graflow.distributed.rqapi.layout import now

if TYPE_CHECKING:
    from graflow.distributed.rqapi.layout import Execution
    from graflow.worker.rq_worker import GraflowWorker


_SUFFIX = re.compile(r"^(?P<base>.+)-h(?P<n>\d+)$")


def handback_id(job_id: str) -> str:
    """``abc`` → ``abc-h1``, ``abc-h1`` → ``abc-h2``: ids do not grow with each hand-back."""
    match = _SUFFIX.match(job_id)
    if match:
        return f"{match['base']}-h{int(match['n']) + 1}"
    return f"{job_id}-h1"


def abandoned_reason(worker_name: str) -> str:
    return f"abandoned: worker {worker_name} stopped by a second signal; handed back"


def hand_back_job(worker: GraflowWorker, job: Job, execution: Execution | None) -> Job:
    """Enqueue a copy of ``job`` at the front of its queue and fail the original
    (``execution``: the one it ran under; rq 3 may have dropped it from the worker)."""
    queue = worker.queue_class(
        job.origin, connection=worker.connection, serializer=worker.serializer
    )
    failure_ttl = job.failure_ttl if job.failure_ttl is not None else DEFAULT_FAILURE_TTL  # as long as a finished run is kept, not rq's year
    meta: dict[str, Any] = dict(job.meta or {})
    meta["graflow_handed_back_from"] = job.id
    new_id = handback_id(job.id)
    reason = abandoned_reason(worker.name)
    with worker.connection.pipeline() as pipeline:
        new_job: Job = queue.enqueue_call(
            str(job.func_name),
            args=job.args,
            kwargs=job.kwargs,
            timeout=None if job.timeout is None else int(job.timeout),
            result_ttl=job.result_ttl,
            ttl=job.ttl,
            failure_ttl=failure_ttl,
            description=job.description,
            job_id=new_id,
            meta=meta,
            at_front=True,  # it was already at the head of the line once
            pipeline=pipeline,
        )
        job.ended_at = now()
        job.set_status(JobStatus.FAILED, pipeline=pipeline)
        # As rq records a failure: the registry entry, and a Result carrying the reason
        # (``job.latest_result().exc_string``; rq info and dashboards show it).
        job.failed_job_registry.add(job, ttl=failure_ttl, exc_string=reason, pipeline=pipeline)
        Result.create_failure(
            job,
            failure_ttl,
            exc_string=reason,
            worker_name=worker.name,
            pipeline=pipeline,
            execution_id=execution.id if execution else None,
            execution_started_at=execution.created_at if execution else None,
            execution_ended_at=job.ended_at,
        )
        worker.cleanup_execution(job, pipeline, execution)  # leaves the started registry
        pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
        worker.increment_failed_job_count(pipeline=pipeline)
        pipeline.execute()
    worker.log.warning(
        "Worker %s: job %s handed back to %s as %s", worker.name, job.id, job.origin, new_id
    )
    return new_job


__all__ = ["abandoned_reason", "hand_back_job", "handback_id"]
