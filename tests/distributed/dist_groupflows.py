"""Workflows whose parallel group runs on the pool from an in-process run.

Workers import this module (it is on their PYTHONPATH), like ``dist_flows``.
"""

from __future__ import annotations

import os
from typing import Any

from dist_flows import FlowError

from graflow import task, workflow
from graflow.core.workflow import WorkflowContext


def pid_group(
    prefix: str, queue: str | None = None, timeout: float | None = None, backend: str = "redis",
    redis_client: Any = None,
) -> WorkflowContext:
    """head >> (m1 | m2 | m3 on the pool) >> tail, for an in-process run on a Redis channel.

    ``redis_client`` goes into ``backend_config`` as upstream documents it."""
    from graflow import parallel

    config: dict[str, Any] = {"key_prefix": prefix, "queue": queue or prefix}
    if redis_client is not None:
        config["redis_client"] = redis_client
    if timeout is not None:
        config["timeout"] = timeout
    with workflow("pid_group") as wf:

        @task(inject_context=True)
        def head(ctx: Any) -> str:
            ctx.get_channel().append("pids", ["head", os.getpid()])
            return "head"

        def member(name: str) -> Any:
            @task(name, inject_context=True)
            def body(ctx: Any) -> str:
                ctx.get_channel().append("pids", [ctx.task_id, os.getpid()])
                return ctx.task_id

            return body

        @task(inject_context=True)
        def tail(ctx: Any) -> list[Any]:
            ctx.get_channel().append("pids", ["tail", os.getpid()])
            return sorted(p[0] for p in ctx.get_channel().get("pids"))

        group = parallel(member("m1"), member("m2"), member("m3")).with_execution(
            backend=backend, backend_config=config
        )
        head >> group >> tail
    return wf


def failing_group(prefix: str, backend: str = "redis", best_effort: bool = False) -> WorkflowContext:
    """(ok | bad) >> tail, ok >> after inside ok's branch; bad raises on whichever side runs it."""
    from graflow import parallel
    from graflow.core.handlers.group_policy import BestEffortGroupPolicy

    with workflow("failing_group") as wf:

        @task
        def ok() -> str:
            return "ok"

        @task
        def bad() -> None:
            raise FlowError("bad member")

        @task
        def after() -> str:
            return "after"

        @task
        def tail() -> str:
            return "tail"

        group = parallel(ok, bad).with_execution(
            backend=backend, backend_config={"key_prefix": prefix},
            policy=BestEffortGroupPolicy() if best_effort else "strict",
        )  # fmt: skip
        ok >> after
        group >> tail
    return wf

