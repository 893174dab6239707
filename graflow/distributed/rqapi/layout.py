"""rq's Redis layout and undocumented modules graflow relies on, named once (docs/rq.md).

Every key graflow reads or writes in rq's name is built here from rq's own templates,
so an ``RQ_KEY_PREFIX`` (rq 3) moves them too. Each use is listed in ``private`` with
the test that fails when rq changes it.
"""

from __future__ import annotations

from datetime import datetime, timezone

import rq.executions as _rq_executions
from rq import Queue, Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.executions import Execution, ExecutionRegistry
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.suspension import WORKERS_SUSPENDED
from rq.utils import utcformat, utcparse
from rq.worker_registration import REDIS_WORKER_KEYS, WORKERS_BY_QUEUE_KEY

#: ``rq:job:`` - a job's hash is ``JOB_PREFIX + job_id``.
JOB_PREFIX: str = Job.redis_job_namespace_prefix
#: ``rq:queue:`` - a queue's list of waiting job ids.
QUEUE_PREFIX: str = Queue.redis_queue_namespace_prefix
#: ``rq:queues`` - the set of queue keys ``rq info`` and rq-dashboard list.
QUEUES_SET: str = Queue.redis_queues_keys
#: ``rq:worker:`` - a worker's hash is ``WORKER_PREFIX + name``.
WORKER_PREFIX: str = Worker.redis_worker_namespace_prefix
#: ``rq:workers`` - the set of registered worker keys.
WORKERS_SET: str = REDIS_WORKER_KEYS
#: ``rq:wip:`` - a queue's started registry (members ``job_id:execution_id``).
STARTED_PREFIX: str = StartedJobRegistry.key_template.format("")
#: ``rq:scheduled:`` - a queue's delayed jobs (graflow's retries with a back-off), scored by when.
SCHEDULED_PREFIX: str = ScheduledJobRegistry.key_template.format("")
#: ``rq:finished:`` - a queue's finished registry (members: job ids, scored by expiry).
FINISHED_PREFIX: str = FinishedJobRegistry.key_template.format("")
#: ``rq:executions:`` - a job's execution registry (members: execution ids).
EXECUTIONS_PREFIX: str = ExecutionRegistry.key_template.format("")
#: ``rq:execution:`` - an execution's hash is ``EXECUTION_PREFIX + job_id:execution_id``.
EXECUTION_PREFIX: str = Execution(id="e", job_id="j", connection=None).key[: -len("j:e")]  # type: ignore[arg-type]

_WORKER_EXECUTIONS = getattr(_rq_executions, "WORKER_EXECUTIONS_KEY_TEMPLATE", None)


def started_key(queue_name: str) -> str:
    return STARTED_PREFIX + queue_name


def queue_key(queue_name: str) -> str:
    return QUEUE_PREFIX + queue_name


def scheduled_key(queue_name: str) -> str:
    return SCHEDULED_PREFIX + queue_name
def finished_key(queue_name: str) -> str:
    return FINISHED_PREFIX + queue_name


def executions_key(job_id: str) -> str:
    return EXECUTIONS_PREFIX + job_id


def intermediate_key(queue_name: str) -> str:
    """The list rq's blocking dequeue parks a job id on until the job starts."""
    return str(IntermediateQueue.get_intermediate_queue_key(QUEUE_PREFIX + queue_name))


def worker_key(name: str) -> str:
    return WORKER_PREFIX + name


def workers_by_queue_key(queue_name: str) -> str:
    return str(WORKERS_BY_QUEUE_KEY % queue_name)


def worker_executions_key(name: str) -> str | None:
    """rq 3's index of a worker's running executions (``rq info`` reads it); None on rq 2."""
    return None if _WORKER_EXECUTIONS is None else str(_WORKER_EXECUTIONS.format(name))


def now() -> datetime:
    """rq's clock: an aware UTC datetime (``rq.utils.now``)."""
    return datetime.now(timezone.utc)


#: rq 3 writes the execution's ``job_id`` into its hash, and the worker index; rq 2
#: writes the worker hash's ``current_job`` and ``current_job_working_time`` instead.
WRITES_WORKER_CURRENT_JOB = _WORKER_EXECUTIONS is None

__all__ = [
    "DEFAULT_LOGGING_DATE_FORMAT",
    "DEFAULT_LOGGING_FORMAT",
    "EXECUTIONS_PREFIX",
    "EXECUTION_PREFIX",
    "FINISHED_PREFIX",
    "JOB_PREFIX",
    "QUEUES_SET",
    "QUEUE_PREFIX",
    "SCHEDULED_PREFIX",
    "STARTED_PREFIX",
    "WORKERS_SET",
    "WORKERS_SUSPENDED",
    "WORKER_PREFIX",
    "WRITES_WORKER_CURRENT_JOB",
    "Execution",
    "ExecutionRegistry",
    "executions_key",
    "finished_key",
    "intermediate_key",
    "now",
    "queue_key",
    "scheduled_key",
    "started_key",
    "utcformat",
    "utcparse",
    "worker_executions_key",
    "worker_key",
    "workers_by_queue_key",
]
