"""What differs between rq 2.12 and rq 3.x, in one place (docs/rq.md).

rq 3 passes a job's ``Execution`` explicitly to ``perform_job``, ``handle_job_success``,
``handle_job_failure``, ``cleanup_execution`` and ``maintain_heartbeats``, keeps a
worker's running executions in a dict (``worker.executions``) and a Redis index
(``rq:worker:<name>:executions``), and no longer ``PERSIST``s the job hash in
``Job.perform``. rq 2 keeps one ``worker.execution`` attribute. The helpers here let
graflow's worker be written once for both majors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import rq.job as _rq_job
from rq.executions import Execution
from rq.job import Job
from rq.version import VERSION as RQ_VERSION

#: 2 or 3, from the installed rq (pyproject allows ``rq>=2.12,<4``).
RQ_MAJOR = int(RQ_VERSION.split(".")[0])

T = TypeVar("T")


def current_execution(worker: Any) -> Execution | None:
    """The execution ``worker`` is running, from its memory only.

    rq 3's ``Worker.execution`` property falls back to Redis (the executions index plus
    one ``HGETALL`` each) when the worker holds none, and caches what it found: read per
    heartbeat, an idle worker would pay a round trip each time.
    """
    if RQ_MAJOR >= 3:
        return next(iter(worker.executions.values()), None)
    execution: Execution | None = worker.execution
    return execution


def set_execution(worker: Any, execution: Execution | None) -> None:
    """Record ``execution`` as the one ``worker`` runs (None: it runs none)."""
    if RQ_MAJOR >= 3:
        worker.executions.clear()
        if execution is not None:
            worker.executions[execution.id] = execution
    else:
        worker.execution = execution


def with_execution(method: Callable[..., T], *args: Any, execution: Execution | None, **kwargs: Any) -> T:
    """Call rq ``Worker.method(*args, **kwargs)``, passing ``execution`` where rq 3 takes it."""
    if RQ_MAJOR >= 3:
        return method(*args, execution=execution, **kwargs)
    return method(*args, **kwargs)


class LeanJob(Job):
    """rq's ``Job``; on rq 2 ``perform`` skips the ``PERSIST`` the start step already sent.

    rq 2's ``Job.perform`` begins with ``PERSIST job.key`` (one round trip); graflow's
    start step (``graflow.worker.bookkeeping``) sends it with the rest of the start. rq 3
    moved the ``PERSIST`` into ``prepare_job_execution``, so there this is rq's ``Job``.
    """

    persisted = False

    def perform(self) -> Any:
        if RQ_MAJOR >= 3 or not self.persisted:
            return super().perform()
        # rq 2's perform() without its first line (private use "rq2-job-stack").
        stack: Any = getattr(_rq_job, "_job_stack")  # noqa: B009 - absent on rq 3
        me: Any = self
        stack.push(self)
        try:
            me._result = me._execute()
        finally:
            assert self is stack.pop()
        return me._result


__all__ = ["RQ_MAJOR", "RQ_VERSION", "LeanJob", "current_execution", "set_execution", "with_execution"]
