"""Workflows of the written-keys tests (``test_writes.py``); workers import this module."""

from __future__ import annotations

import threading
from typing import Any

from graflow import RetryPolicy, parallel, task, workflow
from graflow.core.workflow import WorkflowContext

#: Distinct keys the ``many`` task writes: past the cap of 256.
MANY = 300


def writers() -> WorkflowContext:
    """``setter`` writes with every kind of write (and some that write nothing: a lock, a
    delete of a missing key); a group of ``left`` and ``right`` writes a shared key and one
    key each, ``right`` also from a thread it started; ``quiet`` writes nothing; ``flaky``
    writes a key per attempt and fails the first; ``doomed`` writes, then fails the run."""
    with workflow("writers") as wf:

        @task(inject_context=True)
        def setter(ctx: Any) -> str:
            ch = ctx.get_channel()
            ch.set("a", 1)
            ch.append("list", "x")
            ch.prepend("list", "w")
            ch.atomic_add("count", 2)
            ch.set("a", 2)  # again: listed once
            ch.set("tmp", "t", ttl=60)
            ch.delete("tmp")
            ch.delete("never-written")  # deleted nothing: not listed
            with ch.lock("guarded"):  # a lock key, not a channel key
                ch.get("a")
            return "set"

        @task(inject_context=True)
        def left(ctx: Any) -> str:
            ch = ctx.get_channel()
            ch.set("shared", "left")
            ch.set("left.only", 1)
            return "left"

        @task(inject_context=True)
        def right(ctx: Any) -> str:
            ch = ctx.get_channel()
            ch.set("shared", "right")
            worker = threading.Thread(target=lambda: ch.set("right.thread", 1))
            worker.start()
            worker.join()
            return "right"

        @task
        def quiet() -> None:
            return None

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.01))
        def flaky(ctx: Any) -> str:
            ch = ctx.get_channel()
            attempt = int(ch.atomic_add("flaky.attempts", 1))
            ch.set(f"flaky.{attempt}", True)
            if attempt == 1:
                raise RuntimeError("first attempt fails")
            return "ok"

        @task(inject_context=True)
        def doomed(ctx: Any) -> None:
            ctx.get_channel().set("doomed.before", True)
            raise ValueError("failing after a write")

        setter >> parallel(left, right) >> quiet >> flaky >> doomed
    return wf


def many() -> WorkflowContext:
    """One task writing ``MANY`` distinct keys, the first of them twice."""
    with workflow("many-writes") as wf:

        @task(inject_context=True)
        def lots(ctx: Any) -> int:
            ch = ctx.get_channel()
            for i in range(MANY):
                ch.set(f"k{i:03d}", i)
            ch.set("k000", "again")
            return MANY

    return wf


def late_writer() -> WorkflowContext:
    """``slow`` writes a key, then waits at gate ``go``: the test cancels the run there, so
    the attempt's keys are recorded after the run ended (the only keys of the run)."""
    from dist_flows import gate

    with workflow("late-writer") as wf:

        @task(inject_context=True)
        def slow(ctx: Any) -> str:
            ctx.get_channel().set("slow.key", 1)
            gate(ctx)  # appends to "waiting"
            return "slow"

    return wf
