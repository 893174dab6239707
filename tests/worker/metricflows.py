"""Workflows of the metrics tests; the worker processes import this module.

A *gate* holds a task until the test sets a channel key, so a test scrapes while it runs.
"""

from __future__ import annotations

import time
from typing import Any

from graflow import RetryPolicy, task, workflow
from graflow.core.workflow import WorkflowContext

GATE_LIMIT = 25.0


class Boom(Exception):
    """The failing task's error (module level, so it unpickles anywhere)."""


def gate(ctx: Any, key: str = "go") -> None:
    channel = ctx.get_channel()
    channel.append("waiting", ctx.task_id)
    deadline = time.monotonic() + GATE_LIMIT
    while not channel.get(key):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {key!r} of {ctx.task_id} never opened")
        time.sleep(0.02)


def mixed() -> WorkflowContext:
    """ok >> flaky (fails once, retried at once) >> save (checkpoints to the channel's
    ``ck``) >> boom (fails the run)."""
    with workflow("mixed") as wf:

        @task(inject_context=True)
        def ok(ctx: Any) -> int:
            return 1

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.0))
        def flaky(ctx: Any) -> int:
            if ctx.get_channel().append("flaky", 1) == 1:
                raise Boom("first attempt fails")
            return 2

        @task(inject_context=True)
        def save(ctx: Any) -> int:
            ctx.checkpoint(path=ctx.get_channel().get("ck"), metadata={"stage": "saved"})
            return 3

        @task(inject_context=True)
        def boom(ctx: Any) -> None:
            raise Boom("always")

        ok >> flaky >> save >> boom
    return wf


def held() -> WorkflowContext:
    """One task held at the gate ``go``."""
    with workflow("held") as wf:

        @task(inject_context=True)
        def hold(ctx: Any) -> str:
            gate(ctx)
            return "released"

    return wf
