"""Workflows of the tracing tests (workers import this module to run them)."""

from __future__ import annotations

from typing import Any

from graflow import RetryPolicy, parallel, task, workflow
from graflow.core.workflow import WorkflowContext


class Flaky(Exception):
    """The first attempt of ``flaky`` fails with it (module level: unpickles anywhere)."""


def fan_out_in() -> WorkflowContext:
    """``source >> (steady | flaky) >> sink``; ``flaky`` fails once, then completes."""
    with workflow("traced") as wf:

        @task
        def source() -> int:
            return 1

        @task
        def steady() -> str:
            return "steady"

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.0))
        def flaky(ctx: Any) -> str:
            if ctx.retry_count == 0:
                raise Flaky("first attempt fails")
            return "flaky"

        @task
        def sink() -> str:
            return "done"

        source >> parallel(steady, flaky) >> sink
    return wf


def chain() -> WorkflowContext:
    with workflow("traced_chain") as wf:

        @task
        def first() -> int:
            return 1

        @task
        def second() -> int:
            return 2

        first >> second
    return wf
