"""Workflows of the output-capture tests (``test_logs.py``); workers import this module."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from graflow import task, workflow
from graflow.core.workflow import WorkflowContext

#: Lines the chatty task writes: far past a small budget.
CHATTY_LINES = 400


def talking() -> WorkflowContext:
    """``speak`` writes to stdout, stderr, ``logging`` and from a thread of its own;
    ``flaky`` fails its first attempt (output of both attempts), ``quiet`` writes nothing,
    ``last`` prints as the run's final task (its output comes after the run ended)."""
    from graflow import RetryPolicy

    with workflow("talking") as wf:

        @task
        def speak() -> str:
            print("hello from speak")
            print("to stderr", file=sys.stderr)
            logging.getLogger("myapp").warning("a warning from myapp")
            logging.getLogger("graflow.worker").warning("machinery, not captured")
            worker = threading.Thread(target=lambda: print("from a thread of speak"))
            worker.start()
            worker.join()
            return "spoken"

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.01))
        def flaky(ctx: Any) -> str:
            channel = ctx.get_channel()
            attempt = len(channel.get("flaky", []) or []) + 1
            channel.append("flaky", attempt)
            print(f"flaky attempt {attempt}")
            if attempt == 1:
                raise RuntimeError("first attempt fails")
            return "ok"

        @task
        def quiet() -> None:
            return None

        @task
        def last() -> str:
            print("the last word")
            return "done"

        speak >> flaky >> quiet >> last
    return wf


def chatty() -> WorkflowContext:
    """One task printing ``CHATTY_LINES`` numbered lines (about 12 KB)."""
    with workflow("chatty") as wf:

        @task
        def chatter() -> int:
            for i in range(CHATTY_LINES):
                print(f"line {i:04d} " + "x" * 20)
            return CHATTY_LINES

    return wf


def gated_talker() -> WorkflowContext:
    """``before`` prints, then waits at gate ``go``; then prints again and fails (exit 1)."""
    from dist_flows import gate

    with workflow("gated-talker") as wf:

        @task(inject_context=True)
        def waiter(ctx: Any) -> None:
            print("before the gate", flush=True)
            gate(ctx)
            print("after the gate")
            raise RuntimeError("failing on purpose")

    return wf


def final_printer() -> WorkflowContext:
    """A quiet task, then one that prints as the last step of the run."""
    with workflow("final-printer") as wf:

        @task
        def first() -> None:
            return None

        @task
        def closing() -> None:
            print("closing words")

        first >> closing
    return wf


def silent() -> WorkflowContext:
    """Two tasks that write nothing (logging below WARNING is not emitted at all)."""
    with workflow("silent") as wf:

        @task
        def one() -> int:
            logging.getLogger("myapp").info("below the root's level")
            return 1

        @task
        def two(one: int) -> int:
            return one + 1

        one >> two
    return wf
