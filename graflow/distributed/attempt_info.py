"""What one attempt on a worker was, for whoever observes it (log capture, metrics, tracing).

The executor fills it in as the attempt goes: the run's workflow name and trace context once
the session's START step has accepted the attempt, the outcome once its last step answered.
Observers live in the worker layer (``graflow.worker.observe``); this record is all they see,
so the executor knows none of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graflow.distributed.spec import TaskSpec as Wire

logger = logging.getLogger("graflow.worker")

#: Outcomes of an attempt, as its session step recorded it.
#: ``completed``: committed; ``retried``: failed, a retry is queued; ``failed``: failed for
#: good (the branch or the run); ``redelivered``: handed back (Redis was lost mid-attempt);
#: ``superseded``: another attempt owns the activation; ``skipped``: not run (the run is
#: over, gone, or the activation was done already); ``error``: the job raised before any step.
OUTCOMES = ("completed", "retried", "failed", "redelivered", "superseded", "skipped", "error")


@dataclass(eq=False)
class AttemptInfo:
    """One attempt of one activation, on this worker."""

    wire: Wire
    worker: str
    queue: str = ""
    workflow: str = ""
    #: W3C ``traceparent`` of the run (set by a producer that traces), else "".
    traceparent: str = ""
    outcome: str = "error"
    error_type: str = ""
    #: ``time.time()`` when the job began, and when START accepted the attempt (0: never).
    begun: float = field(default_factory=time.time)
    started_at: float = 0.0
    #: Called (in order) once START has accepted the attempt, before the task body runs.
    on_started: list[Callable[[AttemptInfo], None]] = field(default_factory=list, repr=False)

    @property
    def task_id(self) -> str:
        return self.wire.task_id

    @property
    def attempt(self) -> int:
        return self.wire.attempt

    def started(self, meta: dict[str, Any]) -> None:
        """START accepted the attempt; ``meta``: the session fields it returned."""
        self.workflow = str(meta.get("workflow_name") or "")
        self.traceparent = str(meta.get("traceparent") or "")
        self.queue = self.queue or str(meta.get("queue") or "")
        self.started_at = time.time()
        for callback in self.on_started:
            try:
                callback(self)
            except Exception:  # an observer never fails the attempt
                logger.warning("attempt observer failed at the start of %s", self.task_id, exc_info=True)


__all__ = ["OUTCOMES", "AttemptInfo"]
