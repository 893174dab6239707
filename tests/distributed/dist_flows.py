"""Workflows of the distributed tests; workers and CLI subprocesses import this module.

Tasks record what ran through the run's channel (``append``), never through globals:
they run in other processes. A *gate* blocks a task until the test sets a channel key,
so a test can observe a run while it is running, without sleeping for timing.
"""

from __future__ import annotations

import os
import time
from typing import Any

from graflow import task, workflow
from graflow.core.workflow import WorkflowContext
from graflow.exceptions import GraflowRuntimeError, TaskError

GATE_LIMIT = 25.0


class FlowError(Exception):
    """A task's own error type (module level, so it unpickles anywhere)."""


class FlowRuntimeError(GraflowRuntimeError):
    """A GraflowRuntimeError raised by a task: it propagates unchanged."""


def gate(ctx: Any, key: str = "go") -> None:
    """Block until the run's channel holds ``key`` (at most ``GATE_LIMIT`` seconds)."""
    channel = ctx.get_channel()
    channel.append("waiting", ctx.task_id)
    deadline = time.monotonic() + GATE_LIMIT
    while not channel.get(key):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {key!r} of {ctx.task_id} never opened")
        time.sleep(0.02)


def ran(ctx: Any, name: str | None = None) -> None:
    ctx.get_channel().append("ran", name or ctx.task_id)


# -- E6 as a module-level program (the producer subprocess submits it) -------------------
def e6() -> WorkflowContext:
    with workflow("remote") as wf:

        @task
        def square(x: int) -> int:
            return x * x

        @task
        def report(square: int) -> str:
            return str(square)

        square >> report
    return wf


# -- a chain whose middle task waits at a gate -------------------------------------------
def gated_chain() -> WorkflowContext:
    with workflow("gated") as wf:

        @task(inject_context=True)
        def a(ctx: Any) -> str:
            ran(ctx)
            return "a"

        @task(inject_context=True)
        def b(ctx: Any) -> str:
            ran(ctx)
            gate(ctx)
            return "b"

        @task(inject_context=True)
        def c(ctx: Any) -> str:
            ran(ctx)
            return "c-done"

        a >> b >> c
    return wf


def fanout_gated() -> WorkflowContext:
    """start -> b1, b2, b3 (each gated); b1 -> after. Two workers leave one b queued."""
    with workflow("fanout") as wf:

        @task(inject_context=True)
        def start(ctx: Any) -> None:
            ran(ctx)

        def member(name: str) -> Any:
            @task(name, inject_context=True)
            def body(ctx: Any) -> str:
                ran(ctx)
                gate(ctx)
                ran(ctx, f"{ctx.task_id}-end")
                return ctx.task_id

            return body

        b1, b2, b3 = member("b1"), member("b2"), member("b3")

        @task(inject_context=True)
        def after(ctx: Any) -> None:
            ran(ctx)

        start >> b1
        start >> b2
        start >> b3
        b1 >> after
    return wf


def failing(kind: str = "plain") -> WorkflowContext:
    with workflow("failing") as wf:

        @task(inject_context=True)
        def prepare(ctx: Any) -> int:
            ran(ctx)
            return 1

        @task(inject_context=True)
        def explode(ctx: Any) -> None:
            ran(ctx)
            if kind == "runtime":
                raise FlowRuntimeError("runtime boom", task_id="explode")
            if kind == "task_error":  # upstream's positional order: (task_id, message, cause)
                raise TaskError("explode", "went wrong", FlowError("why"))
            raise FlowError("boom", 42)

        @task(inject_context=True)
        def never(ctx: Any) -> None:
            ran(ctx)

        prepare >> explode >> never
    return wf


def failing_plain() -> WorkflowContext:
    return failing("plain")


def terminating() -> WorkflowContext:
    with workflow("terminating") as wf:

        @task(inject_context=True)
        def first(ctx: Any) -> str:
            ran(ctx)
            return "first"

        @task(inject_context=True)
        def stopper(ctx: Any) -> str:
            ran(ctx)
            ctx.terminate_workflow("enough")
            return "stopped"

        @task(inject_context=True)
        def never(ctx: Any) -> None:
            ran(ctx)

        first >> stopper >> never
    return wf


def slow_retry() -> WorkflowContext:
    """A task that fails and is retried after 30 s: a delayed (scheduled) rq job."""
    from graflow import RetryPolicy

    with workflow("slow_retry") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=2, initial_interval=30.0))
        def flaky(ctx: Any) -> None:
            ran(ctx)
            raise FlowError("again")

    return wf


def canceling() -> WorkflowContext:
    with workflow("canceling") as wf:

        @task(inject_context=True)
        def first(ctx: Any) -> None:
            ran(ctx)

        @task(inject_context=True)
        def quitter(ctx: Any) -> None:
            ctx.cancel_workflow("not today")

        first >> quitter
    return wf


def looping() -> WorkflowContext:
    with workflow("agent") as wf:

        @task(inject_context=True)
        def agent(ctx: Any) -> int:
            ran(ctx)
            return 1

        @task(inject_context=True)
        def tool(ctx: Any) -> int:
            ran(ctx)
            return 2

        agent >> tool >> agent
    return wf


def rich() -> WorkflowContext:
    """Channel data, a lock, a dynamic task and a parallel group: many kinds of session keys."""
    from graflow import parallel

    with workflow("rich") as wf:

        @task(inject_context=True)
        def begin(ctx: Any) -> str:
            channel = ctx.get_channel()
            channel.set("plain", {"a": 1})
            channel.set("odd", {1, 2})
            channel.atomic_add("counter", 5)

            @task("extra", inject_context=True)
            def extra(ctx: Any) -> str:
                ran(ctx)
                return "extra"

            ctx.next_task(extra)
            return "begin"

        @task(inject_context=True)
        def left(ctx: Any) -> str:
            ran(ctx)
            return "left"

        @task(inject_context=True)
        def right(ctx: Any) -> str:
            ran(ctx)
            return "right"

        @task(inject_context=True)
        def end(ctx: Any) -> str:
            ran(ctx)
            return "end"

        begin >> parallel(left, right) >> end
    return wf


def summing() -> WorkflowContext:
    """``--set n=5`` -> 10 (sum of 0..n-1)."""
    with workflow("summing") as wf:

        @task
        def numbers(n: int) -> list[int]:
            return list(range(n))

        @task
        def total(numbers: list[int]) -> int:
            return sum(numbers)

        numbers >> total
    return wf


def slow_cli() -> WorkflowContext:
    with workflow("slow") as wf:

        @task(inject_context=True)
        def first(ctx: Any) -> str:
            ran(ctx)
            return "first"

        @task(inject_context=True)
        def waiter(ctx: Any) -> str:
            ran(ctx)
            gate(ctx)
            return "finally"

        first >> waiter
    return wf


not_a_workflow = 42


# -- E8: pool checkpoint ---------------------------------------------------------------
def _redis(ctx: Any) -> Any:
    import redis

    return redis.Redis.from_url(ctx.get_channel().get("redis_url"))


def e8(immediate: bool = False) -> WorkflowContext:
    """fill (10 MiB) >> save (checkpoint) >> risky (fails while the fail key exists) >> final.

    Settings come from the channel: ``ck`` (checkpoint path or None for the automatic
    one), ``fail_key`` (a Redis key) and ``redis_url``.
    """
    with workflow("e8") as wf:

        @task(inject_context=True)
        def fill(ctx: Any) -> int:
            ran(ctx)
            ctx.get_channel().set("blob", b"x" * (10 * 1024 * 1024))
            return 1

        @task(inject_context=True)
        def save(ctx: Any) -> int:
            ran(ctx)
            channel = ctx.get_channel()
            channel.set("save_pid", os.getpid())
            ctx.checkpoint(path=channel.get("ck"), metadata={"pid": os.getpid(), "stage": "saved"},
                           deferred=not immediate)  # fmt: skip
            if immediate:
                channel.set("ck_written", True)
                gate(ctx)
            return 2

        @task(inject_context=True)
        def risky(ctx: Any) -> int:
            ran(ctx)
            if _redis(ctx).exists(ctx.get_channel().get("fail_key")):
                raise FlowError("fail key present")
            return 3

        @task(inject_context=True)
        def final(ctx: Any, risky: int) -> str:
            ran(ctx)
            return f"done-{risky}"

        fill >> save >> risky >> final
    return wf


def checkpoint_at(which: str) -> WorkflowContext:
    """first >> last; the task named ``which`` asks for a deferred checkpoint at channel ``ck``."""
    with workflow("checkpoint_at") as wf:

        def make(name: str, result: str) -> Any:
            @task(name, inject_context=True)
            def body(ctx: Any) -> str:
                ran(ctx)
                if ctx.task_id == which:
                    ctx.checkpoint(path=ctx.get_channel().get("ck"), metadata={"by": which})
                return result

            return body

        make("first", "first-done") >> make("last", "last-done")
    return wf
