"""Crash injection for failover tests: die at a named point, exactly once.

Set ``GRAFLOW_CRASH_AT=<point>`` (comma-separated for several) and the process
calls ``os._exit(CRASH_EXIT_CODE)`` the first time it reaches that point: no
cleanup, no finally blocks, no flushing, as if the machine had lost power there.
With ``GRAFLOW_CRASH_ONCE_FILE=<path>`` the crash happens only if that file can be
created (so one crash per test even with many processes). The points themselves
are documented where they fire.

Crash points
------------
In the order a worker meets them while it runs one activation
(``tests/failover/test_crash_points.py`` crashes at each one and checks that the run
still completes exactly as without the crash):

``job.dequeued``
    ``graflow/worker/rq_worker.py`` (``GraflowWorker.dequeue_job_and_maintain_ttl``):
    rq's blocking dequeue moved the job to its intermediate list; it is not started
    and holds no lease. The reaper puts it back on its queue (same job id).
``job.start``
    ``graflow/worker/jobs.py`` (``execute_task_spec``): the job is started and its
    lease held; no session step yet. The reaper redelivers it as attempt + 1.
``group.before_handover``
    ``graflow/distributed/executor.py`` (``start_group``): a parallel group's run and
    its members' activations are in the session, the members are not in rq. The
    redelivered group start finds its run and re-drives them.
``task.before_commit``
    ``graflow/distributed/pool_engine.py`` (``PoolEngine.commit``): the task body ran
    (its channel writes are visible), its completion is not recorded. The redelivery
    runs the body again.
``checkpoint.after_pkl``, ``checkpoint.after_state``
    ``graflow/storage/local.py``, ``fsspec_store.py`` (after the ``.pkl``, then the
    ``.state.json`` is in place, before the ``.meta.json`` commits the checkpoint) and
    ``redis_store.py`` (before the one transaction: nothing is written), in any
    process writing a checkpoint. On a worker: the completion that asked for a
    deferred checkpoint is committed, the checkpoint is not; the redelivery writes it
    from a fresh snapshot, then hands the successors over.
``checkpoint.before_handover``
    ``graflow/distributed/pool_engine.py`` (``PoolEngine.commit``): committed and the
    deferred checkpoint written; the successors are pending in the session, not in rq.
``commit.before_handover``
    ``graflow/distributed/pool_engine.py`` (``PoolEngine.after_step``): a step (a
    commit, or a failure that finishes a group) is durable, what it made ready is
    pending in the session but not yet in rq. The redelivery re-drives the hand-over.
``job.before_finish``
    ``graflow/worker/jobs.py`` (``execute_task_spec``): the activation is committed
    and handed over; rq has not been told the job finished. The redelivery changes
    nothing.
"""

from __future__ import annotations

import os

CRASH_EXIT_CODE = 137


def crash_point(name: str) -> None:
    """Exit the process at once if ``GRAFLOW_CRASH_AT`` names this point.

    The only environment read outside ``graflow.settings``, on purpose: these are test
    hooks, not settings (never set in production), read where they fire so that a test
    can arm one in any process without going through a process's settings.
    """
    armed = os.environ.get("GRAFLOW_CRASH_AT")
    if not armed or name not in armed.split(","):
        return
    once = os.environ.get("GRAFLOW_CRASH_ONCE_FILE")
    if once:
        try:
            fd = os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, f"{name} {os.getpid()}\n".encode())
        os.close(fd)
    os._exit(CRASH_EXIT_CODE)


__all__ = ["CRASH_EXIT_CODE", "crash_point"]
