"""Workflows of the task-timeout and cancel tests; workers import this module.

Each task records the pid of the process that ran it in the run's channel, so a test
can tell that the same worker process went on to run another run's task.
"""

from __future__ import annotations

import os
import time
from typing import Any

from graflow import task, workflow
from graflow.core.workflow import WorkflowContext

#: Longer than any test waits: a task that returns on its own was not stopped.
HANG = 120.0


def _mark(ctx: Any) -> None:
    ctx.get_channel().append("pids", os.getpid())


def hung(timeout: float | None = 1.0, max_retries: int = 0) -> WorkflowContext:
    """One task that sleeps far longer than its timeout (None: the worker's default applies)."""
    with workflow("hung") as wf:

        @task(timeout=timeout, max_retries=max_retries, inject_context=True)
        def hang(ctx: Any) -> None:
            _mark(ctx)
            time.sleep(HANG)

    return wf


def forever() -> WorkflowContext:
    """One task that never ends by itself and swallows ``Exception``; no timeout."""
    with workflow("forever") as wf:

        @task(inject_context=True)
        def loop(ctx: Any) -> None:
            _mark(ctx)
            ctx.get_channel().set("looping", True)
            while True:
                try:  # noqa: SIM105  (swallowing Exception is the point)
                    time.sleep(0.05)
                except Exception:
                    pass

        @task
        def after() -> str:
            return "never"

        loop >> after

    return wf


def quick() -> WorkflowContext:
    with workflow("quick") as wf:

        @task(inject_context=True)
        def done(ctx: Any) -> int:
            _mark(ctx)
            return os.getpid()

    return wf
