"""Workflows of the dashboard tests; workers import this module (its folder is on their path)."""

from __future__ import annotations

import time
from typing import Any

from graflow import task, workflow
from graflow.core.task import parallel
from graflow.core.workflow import WorkflowContext

#: Seconds a gated task waits for its gate before it fails (a test that forgot to open it).
GATE_LIMIT = 60.0


def gate(ctx: Any, key: str) -> None:
    """Block until the run's channel holds ``key``; note in ``waiting`` that the task waits."""
    channel = ctx.get_channel()
    channel.append("waiting", ctx.task_id)
    deadline = time.monotonic() + GATE_LIMIT
    while not channel.get(key):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {key!r} of {ctx.task_id} never opened")
        time.sleep(0.02)


def fan_loop() -> WorkflowContext:
    """``start >> (left | middle | right) >> join >> loop``: ``middle`` waits at gate
    ``go``; ``loop`` iterates three times, then the run ends."""
    with workflow("fan-loop") as wf:

        @task(inject_context=True)
        def start(ctx: Any) -> str:
            ctx.get_channel().set("started", True)
            print("starting the fan-out")
            return "started"

        @task
        def left() -> int:
            return 1

        @task(inject_context=True)
        def middle(ctx: Any) -> int:
            gate(ctx, "go")
            ctx.get_channel().set("middle.out", 2)
            return 2

        @task
        def right() -> int:
            return 3

        @task(inject_context=True)
        def join(ctx: Any) -> dict[str, int]:
            return {"sum": 6, "<b>not markup</b>": 1}

        @task(inject_context=True)
        def loop(ctx: Any, data: int = 0) -> int:
            if data < 2:
                ctx.next_iteration(data + 1)
            return data

        start >> (left | middle | right) >> join >> loop
    return wf


def gated_pair() -> WorkflowContext:
    """``hold`` waits at gate ``go`` (a run to cancel), then ``after``."""
    with workflow("gated-pair") as wf:

        @task(inject_context=True)
        def hold(ctx: Any) -> None:
            gate(ctx, "go")

        @task
        def after() -> str:
            return "after"

        hold >> after
    return wf


def checkpoint_then_fail() -> WorkflowContext:
    """``first`` checkpoints; ``second`` fails while the channel's ``fail`` is true, and
    prints a traceback-worthy error; ``third`` ends the run."""
    with workflow("checkpoint-then-fail") as wf:

        @task(inject_context=True)
        def first(ctx: Any) -> str:
            ctx.checkpoint(metadata={"stage": "first"})
            return "first"

        @task(inject_context=True)
        def second(ctx: Any) -> str:
            if ctx.get_channel().get("fail"):
                raise ValueError("second refuses while fail is set")
            return "second"

        @task
        def third() -> str:
            return "third"

        first >> second >> third
    return wf


def fan_out(width: int) -> WorkflowContext:
    """``head >> (t0000 | … | t{width-1}) >> tail``: a wide fan-out and fan-in."""
    with workflow(f"fan-out-{width}") as wf:

        @task
        def head() -> None:
            return None

        def make(i: int) -> Any:
            @task(id=f"t{i:04d}")
            def member() -> int:
                return i

            return member

        @task
        def tail() -> None:
            return None

        head >> parallel(*[make(i) for i in range(width)]) >> tail
    return wf


def pickled_result() -> WorkflowContext:
    """``make`` returns a set: a value JSON cannot hold, so the channel stores it pickled
    (signed when the pool has a key)."""
    with workflow("pickled-result") as wf:

        @task
        def make() -> set[int]:
            return {1, 2, 3}

    return wf


def spawner() -> WorkflowContext:
    """``spawn`` waits at gate ``go``, then adds task ``child`` (``next_task``), which
    waits at gate ``go2``; ``last`` follows ``spawn``."""
    with workflow("spawner") as wf:

        @task(inject_context=True)
        def spawn(ctx: Any) -> str:
            gate(ctx, "go")

            @task("child", inject_context=True)
            def child(ctx: Any) -> str:
                gate(ctx, "go2")
                return "child"

            ctx.next_task(child)
            return "spawn"

        @task
        def last() -> str:
            return "last"

        spawn >> last
    return wf
