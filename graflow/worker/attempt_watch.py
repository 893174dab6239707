"""Stop attempts whose run ended (``WorkflowRun.cancel()``, a failed sibling) while they ran.

Why the heartbeat: it beats every ``heartbeat/3`` seconds (1 s by default) anyway, so one
``HGET`` of each running attempt's session state per beat is the whole cost (no
subscription to keep alive; nothing at all while the worker is idle). A final state stops the
attempt through its guard (``graflow.core.timeout``): the task gets the stop raised in
its thread, the attempt fails with ``GraflowWorkflowCanceledError`` and its session step
finds the run final, so nothing is scheduled and the worker takes its next job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from graflow import keys
from graflow.core.timeout import running_attempts

log = logging.getLogger("graflow.worker")

#: A run in one of these states has no use for a running attempt (as graflow.distributed.session).
_FINAL = frozenset({"completed", "failed", "canceled", "terminated"})


class StopChecks:
    """The session-state reads one heartbeat adds to its pipeline, and what it does with
    the replies.

    In-process, every guarded attempt of this process is checked and stopped through
    its guard. With ``--fork`` the attempt runs in a work horse, out of reach of this
    process's guards: the parent checks the session of the job its horse runs and kills
    the horse when the run has ended (rq then reports the horse lost; the redelivery
    step finds the run final and re-enqueues nothing).
    """

    def __init__(self, pipeline: Any, horse_job: Any = None) -> None:
        self.guards = [g for g in running_attempts() if g.watch is not None and g.fired is None]
        for guard in self.guards:
            prefix, session_id = guard.watch
            pipeline.hget(keys.SessionKeys(prefix, session_id).meta, "state")
        self.horse_session: str | None = None
        if horse_job is not None:
            from graflow.distributed.spec import decode
            from graflow.worker.failover import is_graflow_job

            if is_graflow_job(horse_job):
                try:
                    wire = decode(horse_job.args[0])
                except Exception:  # not ours to judge here: the job itself rejects it
                    wire = None
                if wire is not None:
                    self.horse_session = wire.session_id
                    pipeline.hget(keys.SessionKeys(wire.key_prefix, wire.session_id).meta, "state")
        self.count = len(self.guards) + (self.horse_session is not None)

    def apply(self, results: list[Any], kill_horse: Callable[[], None]) -> None:
        """Act on the pipeline's replies (the last ``count`` are ours)."""
        if not self.count:
            return
        states = [r.decode() if isinstance(r, bytes) else r for r in results[-self.count :]]
        for guard, state in zip(self.guards, states, strict=False):
            if state in _FINAL and guard.stop(str(state)):
                log.warning(
                    "run %s is %s: stopping its task %s", guard.watch[1], state, guard.task_id
                )
        if self.horse_session is not None and states[-1] in _FINAL:
            log.warning(
                "run %s is %s: killing the work horse that runs its task",
                self.horse_session,
                states[-1],
            )
            kill_horse()


__all__ = ["StopChecks"]
