"""Workflows of the live-run TTL tests (workers import this module)."""

from __future__ import annotations

import os
import time
from typing import Any

from graflow import task, workflow
from graflow.core.workflow import WorkflowContext


def slow_chain(first: float = 3.5, second: float = 3.0) -> WorkflowContext:
    """t1 (sleeps ``first`` s) >> t2 (adds dynamic task ``extra``, sleeps ``second`` s) >> t3
    (waits at the gate ``go``); each records its worker pid.

    With two idle workers, t2 is always taken by the worker that did not run t1 (that one
    is busy handing t2 over), so it loads the graph from Redis ``first`` seconds after the
    upload: a graph TTL shorter than that would have expired by then."""
    from dist_flows import gate

    with workflow("slow-chain") as wf:

        @task(inject_context=True)
        def t1(ctx: Any) -> str:
            ctx.get_channel().append("pids", os.getpid())
            time.sleep(first)
            return "t1"

        @task(inject_context=True)
        def t2(ctx: Any) -> str:
            ctx.get_channel().append("pids", os.getpid())

            @task("extra", inject_context=True)
            def extra(ctx: Any) -> str:
                ctx.get_channel().set("extra", True)
                return "extra"

            ctx.next_task(extra)
            time.sleep(second)
            return "t2"

        @task(inject_context=True)
        def t3(ctx: Any) -> str:
            ctx.get_channel().append("pids", os.getpid())
            gate(ctx)
            return "done"

        t1 >> t2 >> t3
    return wf
