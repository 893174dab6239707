"""Workflows of the value-size tests (worker processes import this module).

``produce`` records each attempt in the channel (``attempts``), then either writes
``size`` bytes to the channel key ``big`` (``how == "channel"``) or returns them as its
result (``how == "result"``); ``after`` runs only if ``produce`` succeeded.
"""

from __future__ import annotations

from typing import Any

from graflow import task, workflow
from graflow.core.workflow import WorkflowContext


def oversized(max_retries: int = 0) -> WorkflowContext:
    with workflow("value-size") as wf:

        @task(inject_context=True, max_retries=max_retries)
        def produce(ctx: Any) -> Any:
            channel = ctx.get_channel()
            channel.append("attempts", ctx.attempt)
            payload = b"x" * int(channel.get("size"))
            if channel.get("how") == "channel":
                channel.set("big", payload)
                return "written"
            return payload

        @task(inject_context=True)
        def after(ctx: Any) -> str:
            ctx.get_channel().append("after", ctx.task_id)
            return "after"

        produce >> after
    return wf
