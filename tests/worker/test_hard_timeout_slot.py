"""The deadline memory between a worker process and its supervisor (``hard_timeout``):
what an attempt publishes, and which processes the supervisor's check may kill.

Real processes and real shared memory; the end-to-end kill is in
tests/failover/test_hard_timeouts.py.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from graflow.core.timeout import AttemptGuard, set_deadline_sink
from graflow.exceptions import TaskTimeoutError
from graflow.worker import hard_timeout


@pytest.fixture
def slot() -> Iterator[Any]:
    shared = hard_timeout.new_slot(multiprocessing.get_context("fork"))
    hard_timeout.install(shared)
    try:
        yield shared
    finally:
        set_deadline_sink(None)
        hard_timeout._slot = None


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A child process of this one (as a work horse is of its worker process)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_a_main_thread_attempt_publishes_its_deadline_while_it_runs(slot: Any) -> None:
    seen: list[list[float]] = []
    before = time.monotonic()
    assert AttemptGuard("t", 30.0, 1).run(lambda: seen.append(list(slot))) is None
    [(deadline, timeout, pid, killed)] = seen
    assert before + 30.0 <= deadline <= time.monotonic() + 30.0
    assert (timeout, pid, killed) == (30.0, float(os.getpid()), 0.0)
    assert slot[0] == 0.0  # cleared when the attempt ends


def test_nested_attempts_publish_the_earliest_deadline(slot: Any) -> None:
    seen: list[float] = []

    def inner() -> None:
        seen.append(slot[1])

    def outer() -> None:
        AttemptGuard("inner", 60.0, 1).run(inner)
        seen.append(slot[1])  # the outer attempt's deadline again

    AttemptGuard("outer", 5.0, 1).run(outer)
    assert seen == [5.0, 5.0] and slot[0] == 0.0


def test_an_expired_guard_fails_at_once_without_running_the_body() -> None:
    calls: list[int] = []
    with pytest.raises(TaskTimeoutError) as info:
        AttemptGuard("t", 1.0, 1, expired=True).run(lambda: calls.append(1))
    assert calls == [] and info.value.timeout == 1.0 and info.value.attempt == 1


def test_check_kills_a_direct_child_past_deadline_and_grace(slot: Any, sleeper: Any) -> None:
    slot[0], slot[1], slot[2] = time.monotonic() - 1.0, 2.0, float(sleeper.pid)
    assert hard_timeout.check(slot, os.getpid(), grace=30.0) is None  # still within its grace
    assert sleeper.poll() is None
    kill = hard_timeout.check(slot, os.getpid(), grace=0.5)
    assert kill == hard_timeout.Kill(sleeper.pid, 2.0)
    assert sleeper.wait(10) == -9
    assert slot[0] == 0.0 and hard_timeout.take_killed() == 2.0 and hard_timeout.take_killed() is None


def test_check_never_kills_a_process_that_is_not_the_workers(slot: Any, sleeper: Any) -> None:
    # A stale pid: neither the worker process (here: pid 1's child) nor a child of it.
    slot[0], slot[1], slot[2] = time.monotonic() - 10.0, 1.0, float(sleeper.pid)
    assert hard_timeout.check(slot, 1, grace=0.5) is None
    assert sleeper.poll() is None and slot[3] == 0.0
