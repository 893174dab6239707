"""Workflows of the hard-timeout tests; worker processes import this module.

``c_hang`` sleeps in libc through ``ctypes.PyDLL``, which keeps the GIL: no thread of
the process (the timeout watchdog, the heartbeat) runs until it returns.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from graflow import task, workflow
from graflow.core.workflow import WorkflowContext

#: Seconds the C call holds the GIL: longer than any test waits for a run.
C_HANG = 30


def c_hang() -> None:
    ctypes.PyDLL(None).sleep(C_HANG)


def stuck_in_c(timeout: float = 1.0, max_retries: int = 0, hanging_calls: int = 1) -> WorkflowContext:
    """One task whose first ``hanging_calls`` executions hang in C holding the GIL;
    later ones return ``"done"``. Counts its executions in the channel's ``calls`` and
    records the pid and attempt number of each (``pids``, ``attempts``)."""
    with workflow("stuck_in_c") as wf:

        @task(timeout=timeout, max_retries=max_retries, inject_context=True)
        def stuck(ctx: Any) -> str:
            channel = ctx.get_channel()
            calls = channel.atomic_add("calls")
            channel.append("pids", os.getpid())
            channel.append("attempts", ctx.attempt)
            if calls <= hanging_calls:
                c_hang()
            return "done"

    return wf


def quick() -> WorkflowContext:
    with workflow("quick") as wf:

        @task
        def done() -> int:
            return os.getpid()

    return wf
