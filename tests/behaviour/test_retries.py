"""Retries, `RetryPolicy`, `RetryController` and `CycleController` (see docs/execution.md)."""

from __future__ import annotations

import time

import pytest

from graflow import RetryPolicy, task, workflow
from graflow.core.context import ExecutionContext
from graflow.core.cycle import CycleController
from graflow.core.engine import WorkflowEngine
from graflow.core.retry import RetryController
from graflow.exceptions import (
    CycleLimitExceededError,
    GraflowRuntimeError,
    RetryLimitExceededError,
)


def mark(ctx, name):
    ctx.get_channel().append("order", name)


class OwnRuntimeError(GraflowRuntimeError):
    """A GraflowRuntimeError raised by a task body."""


# --- RetryPolicy -----------------------------------------------------------------------


def test_retry_policy_defaults():
    p = RetryPolicy()
    assert (p.max_retries, p.initial_interval, p.backoff_factor, p.max_interval, p.jitter) == (
        0,
        1.0,
        2.0,
        60.0,
        False,
    )


def test_get_delay_is_exponential_and_capped():
    p = RetryPolicy(max_retries=10, initial_interval=1.0, backoff_factor=2.0, max_interval=5.0)
    assert [p.get_delay(k) for k in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert p.get_delay(30) == 5.0


def test_get_delay_with_other_factor():
    p = RetryPolicy(initial_interval=0.5, backoff_factor=3.0, max_interval=100.0)
    assert p.get_delay(0) == pytest.approx(0.5)
    assert p.get_delay(1) == pytest.approx(1.5)
    assert p.get_delay(2) == pytest.approx(4.5)


def test_get_delay_jitter_bounds_and_cap():
    p = RetryPolicy(initial_interval=2.0, backoff_factor=2.0, max_interval=10.0, jitter=True)
    for k, base in ((0, 2.0), (1, 4.0)):
        values = [p.get_delay(k) for _ in range(300)]
        assert all(0.5 * base <= v <= 1.5 * base for v in values)
        assert len(set(values)) > 1  # actually random
    capped = [p.get_delay(2) for _ in range(300)]  # base 8 → jitter up to 12, capped at 10
    assert all(4.0 <= v <= 10.0 for v in capped)
    assert max(capped) <= 10.0


# --- retry semantics -------------------------------------------------------------------


def test_exhausted_retries_raise_retry_limit_exceeded(driver):
    with workflow("exhaust") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=2, initial_interval=0.01))
        def flaky(ctx):
            ctx.get_channel().append("attempts", [ctx.attempt, ctx.retry_count, ctx.max_retries])
            raise ValueError(f"boom {ctx.attempt}")

    out = driver.run(wf)
    err = out.error
    assert isinstance(err, RetryLimitExceededError)
    assert isinstance(err, GraflowRuntimeError)
    assert err.task_id == "flaky"
    assert err.retry_count == 3
    assert err.max_retries == 2
    assert isinstance(err.last_error, ValueError)
    assert str(err.last_error) == "boom 3"
    assert isinstance(err.cause, ValueError)
    assert str(err.cause) == "boom 3"
    assert out.channel.get("attempts") == [[1, 0, 2], [2, 1, 2], [3, 2, 2]]
    assert out.completed_tasks == []


def test_retry_that_succeeds_completes_once(driver):
    with workflow("recover") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=2, initial_interval=0.01))
        def flaky(ctx):
            mark(ctx, f"flaky{ctx.attempt}")
            if ctx.attempt < 3:
                raise ValueError("not yet")
            return "ok"

        @task(inject_context=True)
        def after(ctx, flaky):
            mark(ctx, f"after:{flaky}")
            return flaky

        flaky >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.result == "ok"
    assert out.channel.get("order") == ["flaky1", "flaky2", "flaky3", "after:ok"]
    assert out.completed_tasks == ["flaky", "after"]
    assert out.steps == 2  # failed attempts are not steps


def test_failed_attempts_do_not_count_as_cycles(driver):
    with workflow("no_cycles") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=2, initial_interval=0.01))
        def flaky(ctx):
            ctx.get_channel().append("cycles", ctx.cycle_count)
            if ctx.attempt < 3:
                raise ValueError("not yet")

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("cycles") == [1, 1, 1]
    assert out.steps == 1


def test_no_retries_wraps_error_as_graflow_runtime_error(driver):
    with workflow("wrap") as wf:

        @task
        def bad():
            raise ValueError("plain failure")

    out = driver.run(wf)
    err = out.error
    assert type(err) is GraflowRuntimeError
    assert "An error occurred" in str(err)
    assert isinstance(err.cause, ValueError)
    assert str(err.cause) == "plain failure"


def test_no_retries_cause_is_the_original_exception_object():
    boom = ValueError("the object")
    with workflow("wrap_identity") as wf:

        @task
        def bad():
            raise boom

    with pytest.raises(GraflowRuntimeError) as info:
        wf.execute()
    assert info.value.cause is boom
    assert info.value.__cause__ is boom


def test_graflow_runtime_error_from_task_propagates_unchanged(driver):
    with workflow("unchanged") as wf:

        @task
        def bad():
            raise OwnRuntimeError("mine", task_id="bad")

    out = driver.run(wf)
    assert type(out.error) is OwnRuntimeError
    assert str(out.error) == "mine"


def test_graflow_runtime_error_identity_is_kept_in_process():
    mine = OwnRuntimeError("mine")
    with workflow("unchanged_identity") as wf:

        @task
        def bad():
            raise mine

    with pytest.raises(OwnRuntimeError) as info:
        wf.execute()
    assert info.value is mine


def test_cycle_limit_error_from_task_propagates_unchanged(driver):
    with workflow("cycle_unchanged") as wf:

        @task(inject_context=True, max_cycles=1)
        def loop(ctx):
            ctx.next_iteration()

    out = driver.run(wf)
    assert type(out.error) is CycleLimitExceededError


def test_failing_tasks_result_entry_holds_the_exception(driver):
    with workflow("result_exc") as wf:

        @task
        def bad():
            raise KeyError("missing thing")

    out = driver.run(wf)
    assert out.error is not None
    stored = out.channel.get("bad.__result__")
    assert isinstance(stored, KeyError)
    assert "missing thing" in str(stored)


def test_retry_is_queued_at_the_tail():
    with workflow("tail") as wf:

        @task(inject_context=True)
        def s(ctx):
            mark(ctx, "s")

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.001))
        def x(ctx):
            mark(ctx, f"x{ctx.attempt}")
            if ctx.attempt == 1:
                raise ValueError("first")

        @task(inject_context=True)
        def y(ctx):
            mark(ctx, "y")

        s >> x
        s >> y

    _, ctx = wf.execute(ret_context=True)
    assert ctx.channel.get("order") == ["s", "x1", "y", "x2"]
    assert ctx.completed_tasks == ["s", "y", "x"]


def test_retry_does_not_start_before_its_delay(driver):
    delay = 0.05
    with workflow("delay") as wf:

        @task(
            inject_context=True,
            retry_policy=RetryPolicy(max_retries=1, initial_interval=delay, backoff_factor=1.0),
        )
        def flaky(ctx):
            if ctx.attempt == 1:
                ctx.get_channel().set("failed_at", time.time())
                raise ValueError("first")
            ctx.get_channel().set("retried_at", time.time())

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("retried_at") - out.channel.get("failed_at") >= delay * 0.95


def test_retry_count_is_never_reset_on_success(driver):
    with workflow("retry_count") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=3, initial_interval=0.001))
        def loop(ctx, data=0):
            ctx.get_channel().append("seen", [data, ctx.attempt, ctx.retry_count])
            if data == 0 and ctx.attempt == 1:
                raise ValueError("base fails once")
            if data < 1:
                ctx.next_iteration(data + 1)

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("seen") == [[0, 1, 0], [0, 2, 1], [1, 1, 1]]


def test_engine_thread_sleeps_for_in_process_retry():
    with workflow("sleep") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.05))
        def flaky(ctx):
            if ctx.attempt == 1:
                raise ValueError("first")
            return "ok"

    ctx = ExecutionContext.create(wf.graph, "flaky")
    started = time.monotonic()
    assert WorkflowEngine().execute(ctx) == "ok"
    assert time.monotonic() - started >= 0.045


# --- controllers -----------------------------------------------------------------------


def test_retry_controller_per_node_settings():
    rc = RetryController(default_max_retries=1)
    assert rc.get_max_retries_for_node("a") == 1
    rc.set_node_max_retries("a", 4)
    assert rc.get_max_retries_for_node("a") == 4
    assert rc.get_max_retries_for_node("b") == 1
    assert rc.get_retry_count("a") == 0
    rc.increment("a")
    rc.increment("a")
    assert rc.get_retry_count("a") == 2
    assert rc.get_retry_count("b") == 0
    policy = RetryPolicy(max_retries=2, initial_interval=0.01)
    rc.set_node_policy("p", policy)
    assert rc.get_policy_for_node("p") is policy
    assert rc.get_policy_for_node("a") is None


def test_retry_controller_defaults():
    rc = RetryController()
    assert rc.get_max_retries_for_node("anything") == 0


def test_cycle_controller_counts_and_limits():
    cc = CycleController()
    assert cc.get_max_cycles_for_node("a") == 100
    cc.set_node_max_cycles("a", 2)
    assert cc.get_max_cycles_for_node("a") == 2
    assert cc.get_cycle_count("a") == 0
    cc.increment("a")
    assert cc.get_cycle_count("a") == 1
    assert cc.accept_next_cycle("a") is True
    cc.check_cycle_limit("a")  # 1 < 2: fine
    cc.increment("a")
    assert cc.accept_next_cycle("a") is False
    with pytest.raises(CycleLimitExceededError):
        cc.check_cycle_limit("a")


def test_execution_context_cycle_default_is_ten():
    with workflow("ten") as wf:

        @task
        def a():
            pass

    ctx = ExecutionContext.create(wf.graph, "a")
    assert ctx.cycle_controller.get_max_cycles_for_node("never_configured") == 10


def test_static_loops_are_bounded_only_by_max_steps(driver):
    with workflow("static_loop") as wf:

        @task(inject_context=True)
        def agent(ctx):
            ctx.get_channel().append("cycles", ctx.cycle_count)

        @task
        def tool():
            pass

        agent >> tool >> agent

    out = driver.run(wf, "agent", max_steps=30)
    assert out.error is None  # no CycleLimitExceededError although 15 > 10 cycles
    assert out.stop_reason == "max_steps"
    assert out.channel.get("cycles") == list(range(1, 16))
