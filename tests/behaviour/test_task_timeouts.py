"""``@task(timeout=seconds)`` in-process: an attempt that runs too long fails with
``TaskTimeoutError`` and goes through the task's retry policy (graflow.core.timeout).

Bodies that would run for a minute prove the stop: each test has a generous deadline
far below the body's own length, never a timing assertion.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from graflow import task, workflow
from graflow.codec import Purpose, dumps, loads
from graflow.core.fingerprint import graph_fingerprint
from graflow.exceptions import (
    ConfigError,
    GraflowRuntimeError,
    ParallelGroupError,
    RetryLimitExceededError,
    TaskTimeoutError,
)

#: Far below the bodies' 60 s: the attempt was stopped, not finished.
DEADLINE = 20.0


def test_sleeping_task_raises_task_timeout_error() -> None:
    with workflow("timeout_sleep") as wf:

        @task(timeout=0.5)
        def slow() -> None:
            time.sleep(60)

    started = time.monotonic()
    with pytest.raises(TaskTimeoutError) as info:
        wf.execute()
    assert time.monotonic() - started < DEADLINE
    err = info.value
    assert isinstance(err, GraflowRuntimeError) and isinstance(err, TimeoutError)
    assert (err.task_id, err.timeout, err.attempt) == ("slow", 0.5, 1)
    assert "timeout of 0.5 s" in str(err) and "; " in str(err)


def test_busy_loop_that_catches_exception_is_stopped() -> None:
    """Pure Python that never sleeps and swallows ``Exception`` still stops."""
    with workflow("timeout_busy") as wf:

        @task(timeout=0.3, inject_context=True)
        def spin(ctx) -> None:
            ctx.get_channel().set("entered", True)
            while True:
                try:  # noqa: SIM105  (swallowing Exception is the point)
                    sum(range(100))
                except Exception:
                    pass

    started = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        wf.execute()
    assert time.monotonic() - started < DEADLINE


def test_timeout_goes_through_the_retry_policy() -> None:
    from graflow.core.context import ExecutionContext

    with workflow("timeout_retry") as wf:

        @task(timeout=0.3, max_retries=2, inject_context=True)
        def flaky(ctx) -> None:
            ctx.get_channel().append("attempts", 1)
            while True:
                pass

    ctx = ExecutionContext.create(wf.graph, "flaky")
    started = time.monotonic()
    with pytest.raises(RetryLimitExceededError) as info:
        ctx.execute()
    assert time.monotonic() - started < DEADLINE
    err = info.value
    assert isinstance(err.last_error, TaskTimeoutError)
    assert err.last_error.attempt == 3 and err.max_retries == 2
    assert isinstance(err.cause, TaskTimeoutError)
    assert len(ctx.channel.get("attempts")) == 3


def test_retry_after_a_timeout_can_succeed() -> None:
    with workflow("timeout_then_ok") as wf:

        @task(timeout=0.3, max_retries=1, inject_context=True)
        def second_time_lucky(ctx) -> str:
            channel = ctx.get_channel()
            channel.append("attempts", 1)
            if len(channel.get("attempts")) == 1:
                time.sleep(60)
            return "ok"

    assert wf.execute() == "ok"


def test_failed_task_result_holds_the_timeout_error() -> None:
    from graflow.core.context import ExecutionContext

    with workflow("timeout_result") as wf:

        @task(timeout=0.3)
        def stuck() -> None:
            time.sleep(60)

    ctx = ExecutionContext.create(wf.graph, "stuck")
    with pytest.raises(TaskTimeoutError):
        ctx.execute()
    assert isinstance(ctx.get_result("stuck"), TaskTimeoutError)


def test_group_member_on_a_thread_times_out() -> None:
    """In-process group members run on threads: the stop is raised into that thread."""
    threads: list[bool] = []
    with workflow("timeout_group") as wf:

        @task(timeout=0.5)
        def hang() -> None:
            threads.append(threading.current_thread() is threading.main_thread())
            while True:
                time.sleep(0.01)

        @task
        def fine() -> str:
            return "fine"

        _ = hang | fine

    started = time.monotonic()
    with pytest.raises(ParallelGroupError) as info:
        wf.execute()
    assert time.monotonic() - started < DEADLINE
    assert threads == [False]  # it did run on a worker thread
    assert "TaskTimeoutError" in str(info.value) and "hang" in str(info.value)


def test_task_within_its_timeout_is_unaffected() -> None:
    with workflow("timeout_ok") as wf:

        @task(timeout=30)
        def quick() -> int:
            return 7

        @task(timeout=30)
        def double(quick: int) -> int:
            return quick * 2

        quick >> double

    assert wf.execute() == 14


def test_no_stop_lands_after_the_attempt() -> None:
    """A task that ends right at its deadline leaves no stray stop for the code after it."""
    with workflow("timeout_edge") as wf:

        @task(timeout=0.05, max_retries=10)
        def edge() -> int:
            end = time.monotonic() + 0.045
            while time.monotonic() < end:
                pass
            return 1

    for _ in range(5):
        with contextlib.suppress(RetryLimitExceededError):
            wf.execute()
        # Code after the run: a late carrier would surface here as a BaseException.
        for _ in range(200_000):
            pass


@pytest.mark.parametrize("bad", [0, -1, "30", True, float("nan"), float("inf")])
def test_bad_timeout_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="timeout"):

        @task(timeout=bad)
        def t() -> None:
            pass


def test_timeout_travels_with_the_task_but_not_in_the_fingerprint() -> None:
    def body() -> int:
        return 1

    with workflow("fp_plain") as plain:
        task("t")(body)
    with workflow("fp_timeout") as timed:
        t = task("t", timeout=2.5)(body)

    assert t.timeout == 2.5
    assert loads(dumps(t, Purpose.TASK), Purpose.TASK).timeout == 2.5  # as the pool ships it
    assert t(x=1).timeout == 2.5  # a bound instance keeps it
    # Like max_retries, a timeout is how the task runs, not what it is.
    assert graph_fingerprint(plain.graph) == graph_fingerprint(timed.graph)


def test_attempt_that_holds_the_gil_past_its_timeout_still_fails() -> None:
    """A C call holding the GIL cannot be interrupted; when it returns late, the attempt
    fails all the same (an attempt longer than its timeout never succeeds)."""
    import ctypes

    with workflow("timeout_gil") as wf:

        @task(timeout=0.1)
        def native() -> str:
            ctypes.PyDLL(None).usleep(1_000_000)  # 1 s with the GIL held
            return "late"

    with pytest.raises(TaskTimeoutError):
        wf.execute()


def test_task_that_swallows_the_stop_and_returns_still_fails() -> None:
    """``except BaseException`` can catch the stop, but not turn a late attempt into a success."""
    with workflow("timeout_swallow") as wf:

        @task(timeout=0.2)
        def stubborn() -> str:
            try:
                time.sleep(60)
            except BaseException:
                return "swallowed"
            return "slept"

    with pytest.raises(TaskTimeoutError):
        wf.execute()
