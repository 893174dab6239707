"""Workflows of the fenced-write tests; worker processes import this module.

``late_writer``: ``write`` → ``after``. ``write`` makes its first channel writes, then, as
attempt 1, leaves a marker file and spins until its process has been stopped and
continued (the test SIGSTOPs its worker there, between two writes; with a ``ride-out``
file it then also ignores the worker's stop, see ``ride_out_stop``); as a later attempt
it leaves its own marker and waits for the test's ``go`` file. Then it makes every kind
of write (atomic_add, set, append, prepend, delete, a lock), each value naming the
attempt. Markers live in ``$FENCE_DIR``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from graflow import task, workflow
from graflow.core.workflow import WorkflowContext


def _dir() -> Path:
    return Path(os.environ["FENCE_DIR"])


def mark(name: str) -> None:
    """Write ``$FENCE_DIR/<name>`` (this process's pid) atomically."""
    tmp = _dir() / f".{name}.tmp"
    tmp.write_text(str(os.getpid()))
    tmp.rename(_dir() / name)


def spin_until_continued(since: float, limit: float = 60.0) -> None:
    """Spin (no sleep) until the monotonic clock jumps by more than 0.5 s: the process was
    stopped and continued somewhere after ``since``."""
    last = since
    while True:
        now = time.monotonic()
        if now - last > 0.5:
            return
        if now - since > limit:
            raise RuntimeError(f"the test never stopped this worker within {limit} s")
        last = now


def ride_out_stop(limit: float = 5.0) -> None:
    """Wait for the worker's stop of a task whose run has ended, and ignore it.

    A worker stops the attempts of a run that has ended (its heartbeat reads the run's
    state), by raising a BaseException in the task. Continued after its run ended, the
    late attempt races that stop with its next write; this task swallows the stop, so its
    writes are always tried, and must be dropped by the fence alone."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(0.01)


def wait_for_go(limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not (_dir() / "go").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no go file in {_dir()} within {limit} s")
        time.sleep(0.02)


def late_writer() -> WorkflowContext:
    with workflow("fenced-late-writer") as wf:

        @task(inject_context=True)
        def write(ctx: Any) -> str:
            channel = ctx.get_channel()
            me = f"a{ctx.attempt}"
            channel.set("first", me)
            channel.set("doomed", me)
            if ctx.attempt == 1:
                since = time.monotonic()  # before the marker: a stop right after it counts
                mark("started-1")
                try:
                    spin_until_continued(since)
                    if (_dir() / "ride-out").exists():
                        ride_out_stop()
                except BaseException:  # the worker's stop, ignored: see ride_out_stop
                    pass
            else:
                mark(f"started-{ctx.attempt}")
                wait_for_go()
            channel.atomic_add("count", 1)
            channel.set("second", me)
            channel.append("log", me)
            channel.prepend("log", f"{me}-head")
            channel.delete("doomed")
            with channel.lock("resource"):
                channel.set("locked", me)
            return me

        @task(inject_context=True)
        def after(ctx: Any, write: str) -> str:
            return write.upper()

        write >> after
    return wf
