"""Workflows of the failover tests; worker processes import this module.

Every task body records its execution with ``channel.append("ran", task_id)`` (so a
test can count how often a body ran, across processes) and writes one data key.
``maybe_arm`` arms a crash point from inside a task body: the test pre-creates the
``GRAFLOW_CRASH_ONCE_FILE`` (disarmed) and names the arming task in ``FO_ARM_AT``; the
first execution of that task deletes the file, so the next process to reach the
armed point crashes there (once).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from typing import Any

from graflow import parallel, task, workflow
from graflow.core.workflow import WorkflowContext

MEMBERS = ("p1", "p2", "p3")


def maybe_arm(ctx: Any) -> None:
    """Arm the crash point if this task is ``FO_ARM_AT`` (first execution only)."""
    once = os.environ.get("GRAFLOW_CRASH_ONCE_FILE")
    if not once or os.environ.get("FO_ARM_AT") != ctx.task_id:
        return
    try:
        fd = os.open(once + ".armed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # a re-run of the arming task must not arm a second crash
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(once)


def step(ctx: Any, value: Any) -> Any:
    """What every task of the diamond flow does: record, write a data key, arm."""
    channel = ctx.get_channel()
    channel.append("ran", ctx.task_id)
    channel.set(f"data:{ctx.task_id}", value)
    maybe_arm(ctx)
    time.sleep(0.02)
    return value


def checkpoint_location(ctx: Any) -> str:
    """``$FO_CKPT/<session id>``: a tmp dir or a ``redis://`` URL the test chose."""
    return f"{os.environ['FO_CKPT']}/{ctx.session_id}"


def diamond() -> WorkflowContext:
    """fetch → a, b → join → parallel(p1, p2, p3) → save (checkpoint) → final."""
    with workflow("failover-diamond") as wf:

        @task(inject_context=True)
        def fetch(ctx: Any) -> int:
            return int(step(ctx, 1))

        @task(inject_context=True)
        def a(ctx: Any, fetch: int) -> int:
            return int(step(ctx, fetch + 10))

        @task(inject_context=True)
        def b(ctx: Any, fetch: int) -> int:
            return int(step(ctx, fetch + 100))

        @task(inject_context=True)
        def join(ctx: Any, a: int, b: int) -> int:
            return int(step(ctx, a + b))

        def member(name: str, weight: int) -> Any:
            @task(inject_context=True, id=name)
            def body(ctx: Any) -> int:
                return int(step(ctx, ctx.get_channel().get("data:join") * weight))

            return body

        group = parallel(*(member(n, i + 1) for i, n in enumerate(MEMBERS)))

        @task(inject_context=True)
        def save(ctx: Any) -> int:
            total = sum(ctx.get_channel().get(f"data:{n}") for n in MEMBERS)
            ctx.checkpoint(path=checkpoint_location(ctx), metadata={"stage": "save"})
            return int(step(ctx, total))

        @task(inject_context=True)
        def final(ctx: Any, save: int) -> str:
            return str(step(ctx, f"total={save}"))

        fetch >> a
        fetch >> b
        a >> join
        b >> join
        join >> group >> save >> final
    return wf


def fan(members: int = 480, tail: int = 18, nap: float = 0.008) -> WorkflowContext:
    """start → parallel(m0…m{members-1}) → t0 → … → t{tail-1}: 1 + members + 1 + tail tasks."""
    with workflow("failover-fan") as wf:

        def body(name: str) -> Any:
            @task(inject_context=True, id=name)
            def run(ctx: Any) -> str:
                ctx.get_channel().append("ran", ctx.task_id)
                time.sleep(nap)
                return name

            return run

        start = body("start")
        group = parallel(*(body(f"m{i}") for i in range(members)))
        chain = [body(f"t{i}") for i in range(tail)]
        start >> group >> chain[0]
        for left, right in itertools.pairwise(chain):
            left >> right
    return wf


def long_running() -> WorkflowContext:
    """slow → done. ``slow`` records (pid, ppid, attempt, start time) in ``starts``, then
    sleeps ``naps[attempt - 1]`` seconds (the last entry for later attempts)."""
    with workflow("failover-long") as wf:

        @task(inject_context=True)
        def slow(ctx: Any) -> str:
            channel = ctx.get_channel()
            channel.append("starts", [os.getpid(), os.getppid(), ctx.attempt, time.time()])
            naps = channel.get("naps") or [3.0]
            time.sleep(naps[min(ctx.attempt, len(naps)) - 1])
            channel.append("ends", ctx.attempt)
            return "ok"

        @task(inject_context=True)
        def done(ctx: Any, slow: str) -> str:
            ctx.get_channel().append("ran", ctx.task_id)
            return slow.upper()

        slow >> done
    return wf


def poison() -> WorkflowContext:
    """first → poison: ``poison`` kills the process running it, every time."""
    with workflow("failover-poison") as wf:

        @task(inject_context=True)
        def first(ctx: Any) -> None:
            ctx.get_channel().append("ran", ctx.task_id)

        @task(inject_context=True)
        def poison(ctx: Any) -> None:
            ctx.get_channel().append("starts", [os.getpid(), ctx.attempt, time.time()])
            os._exit(3)

        @task(inject_context=True)
        def never(ctx: Any) -> None:
            ctx.get_channel().append("ran", ctx.task_id)

        first >> poison >> never
    return wf


def sigkill_poison() -> WorkflowContext:
    """first → poison: ``poison`` SIGKILLs the process running it, every time (a
    segfaulting C extension, the OOM killer)."""
    import signal

    with workflow("failover-sigkill") as wf:

        @task(inject_context=True)
        def first(ctx: Any) -> None:
            ctx.get_channel().append("ran", ctx.task_id)

        @task(inject_context=True)
        def poison(ctx: Any) -> None:
            ctx.get_channel().append("starts", [os.getpid(), ctx.attempt, time.time()])
            os.kill(os.getpid(), signal.SIGKILL)

        @task(inject_context=True)
        def never(ctx: Any) -> None:
            ctx.get_channel().append("ran", ctx.task_id)

        first >> poison >> never
    return wf


def flaky_once() -> WorkflowContext:
    """``flaky`` fails its first attempt and is retried after 0.3 s (a delayed rq job that
    rq's scheduler process moves to the queue)."""
    from graflow import RetryPolicy

    with workflow("failover-flaky") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.3))
        def flaky(ctx: Any) -> str:
            ctx.get_channel().append("ran", ctx.task_id)
            if ctx.attempt == 1:
                raise RuntimeError("first attempt fails")
            return "retried"

    return wf


def small(variant: int) -> WorkflowContext:
    """The soak test's runs, 3–6 tasks: begin (adds a dynamic task) → [a group of two, on
    even variants] → save (a deferred checkpoint to ``$FO_CKPT/<session>``)."""
    with workflow("failover-small") as wf:

        @task(inject_context=True)
        def begin(ctx: Any) -> int:
            ctx.get_channel().append("ran", ctx.task_id)

            @task(inject_context=True, id="extra")
            def extra(ctx: Any) -> str:
                ctx.get_channel().append("ran", ctx.task_id)
                return "extra"

            ctx.next_task(extra)
            return variant

        def member(name: str) -> Any:
            @task(inject_context=True, id=name)
            def body(ctx: Any) -> str:
                ctx.get_channel().append("ran", ctx.task_id)
                return name

            return body

        @task(inject_context=True)
        def save(ctx: Any) -> str:
            ctx.get_channel().append("ran", ctx.task_id)
            ctx.checkpoint(path=checkpoint_location(ctx), metadata={"variant": variant})
            return "saved"

        if variant % 2 == 0:
            begin >> parallel(member("x"), member("y")) >> save
        else:
            begin >> save
    return wf


def last_chance() -> WorkflowContext:
    """first → survivor → after. ``survivor`` kills its worker on attempts 1 and 2; attempt
    3 runs through and arms the crash point (``FO_ARM_AT=survivor``), so its worker dies
    right after committing it, before handing ``after`` to rq."""
    with workflow("failover-last-chance") as wf:

        @task(inject_context=True)
        def first(ctx: Any) -> None:
            ctx.get_channel().append("ran", ctx.task_id)

        @task(inject_context=True)
        def survivor(ctx: Any) -> str:
            ctx.get_channel().append("starts", [os.getpid(), ctx.attempt, time.time()])
            if ctx.attempt < 3:
                os._exit(3)
            maybe_arm(ctx)
            return "survived"

        @task(inject_context=True)
        def after(ctx: Any, survivor: str) -> str:
            ctx.get_channel().append("ran", ctx.task_id)
            return survivor.upper()

        first >> survivor >> after
    return wf


def group_beside_checkpoint() -> WorkflowContext:
    """start → parallel(g1, g2) → end, and start → x (deferred checkpoint) → y. The group
    is still running when x commits, so x's checkpoint lists it as pending; y fails
    while the channel holds ``fail``."""
    with workflow("failover-group-beside-checkpoint") as wf:

        @task(inject_context=True)
        def start(ctx: Any) -> None:
            ctx.get_channel().append("ran", ctx.task_id)

        def member(name: str) -> Any:
            @task(inject_context=True, id=name)
            def body(ctx: Any) -> str:
                ctx.get_channel().append("ran", ctx.task_id)
                time.sleep(1.0)
                return name

            return body

        @task(inject_context=True)
        def end(ctx: Any) -> None:
            ctx.get_channel().append("ran", ctx.task_id)

        @task(inject_context=True)
        def x(ctx: Any) -> None:
            ctx.get_channel().append("ran", ctx.task_id)
            ctx.checkpoint(path=checkpoint_location(ctx))

        @task(inject_context=True)
        def y(ctx: Any) -> str:
            ctx.get_channel().append("ran", ctx.task_id)
            time.sleep(2.0)  # the group ends first: the run fails only after it
            if ctx.get_channel().get("fail"):
                raise RuntimeError("y fails while 'fail' is set")
            return "y"

        start >> parallel(member("g1"), member("g2")) >> end
        start >> x >> y
    return wf
