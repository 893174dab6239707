"""Workflows of the lease tests (tests/failover/test_leases.py)."""

from __future__ import annotations

import os
import time
from typing import Any

from graflow import task, workflow
from graflow.core.workflow import WorkflowContext


def quiet_nap() -> WorkflowContext:
    """nap → after. ``nap`` records (pid, ppid, attempt) in ``starts`` first, then sleeps
    ``naps[attempt - 1]`` seconds (the last entry for later attempts) and writes nothing
    more: a late attempt of it commits, it does not trip over a fenced channel write."""
    with workflow("lease-nap") as wf:

        @task(inject_context=True)
        def nap(ctx: Any) -> str:
            channel = ctx.get_channel()
            channel.append("starts", [os.getpid(), os.getppid(), ctx.attempt])
            naps = channel.get("naps") or [3.0]
            time.sleep(naps[min(ctx.attempt, len(naps)) - 1])
            return "ok"

        @task(inject_context=True)
        def after(ctx: Any, nap: str) -> str:
            ctx.get_channel().append("after", ctx.attempt)
            return nap.upper()

        nap >> after
    return wf


def gil_holder() -> WorkflowContext:
    """hold → after. ``hold`` calls libc ``sleep`` through ``ctypes.PyDLL``, which keeps the
    GIL for the whole call: no other thread of its process runs meanwhile."""
    with workflow("lease-gil") as wf:

        @task(inject_context=True)
        def hold(ctx: Any) -> str:
            import ctypes

            channel = ctx.get_channel()
            channel.append("starts", [os.getpid(), os.getppid(), ctx.attempt])
            ctypes.PyDLL(None).sleep(int(channel.get("hold") or 30))
            channel.append("ends", ctx.attempt)
            return "held"

        @task(inject_context=True)
        def after(ctx: Any, hold: str) -> str:
            ctx.get_channel().append("after", ctx.attempt)
            return hold.upper()

        hold >> after
    return wf


def blocker() -> WorkflowContext:
    """One task that sleeps ``block`` seconds: keeps a worker busy."""
    with workflow("lease-blocker") as wf:

        @task(inject_context=True)
        def block(ctx: Any) -> str:
            channel = ctx.get_channel()
            channel.append("starts", [os.getpid(), os.getppid(), ctx.attempt])
            time.sleep(channel.get("block") or 60.0)
            return "unblocked"

    return wf
