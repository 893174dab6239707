"""Terminate and cancel, including inside group members (see docs/execution.md)."""

from __future__ import annotations

import threading

import pytest

from graflow import task, workflow
from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine
from graflow.core.handlers.group_policy import GroupExecutionPolicy
from graflow.exceptions import GraflowWorkflowCanceledError, ParallelGroupError


def mark(ctx, name):
    ctx.get_channel().append("order", name)


class FailIfConsultedPolicy(GroupExecutionPolicy):
    """Raises a distinctive error if the engine consults it."""

    def on_group_finished(self, group_id, tasks, results, context):
        raise ParallelGroupError("policy was consulted", group_id, [], [])


# --- terminate -------------------------------------------------------------------------


def test_terminate_completes_task_and_queues_no_successors(driver):
    with workflow("terminate") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b:before")
            ctx.terminate_workflow("enough")
            mark(ctx, "b:after")  # takes effect after the task returns
            return "b-result"

        @task(inject_context=True)
        def c(ctx):
            mark(ctx, "c")

        a >> b >> c

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("order") == ["a", "b:before", "b:after"]
    assert out.completed_tasks == ["a", "b"]
    assert out.stop_reason == "terminate_workflow"
    assert out.result == "b-result"
    assert out.channel.get("b.__result__") == "b-result"
    assert out.steps == 2


def test_terminate_also_stops_other_queued_tasks():
    with workflow("terminate_queue") as wf:

        @task(inject_context=True)
        def s(ctx):
            mark(ctx, "s")

        @task(inject_context=True)
        def x(ctx):
            mark(ctx, "x")
            ctx.terminate_workflow("stop")

        @task(inject_context=True)
        def y(ctx):
            mark(ctx, "y")

        s >> x
        s >> y

    _, ctx = wf.execute(ret_context=True)  # in-process: y is still queued when x terminates
    assert ctx.channel.get("order") == ["s", "x"]
    assert ctx.stop_reason == "terminate_workflow"


# --- cancel ----------------------------------------------------------------------------


def test_cancel_fails_run_and_does_not_complete_the_task(driver):
    with workflow("cancel") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b:before")

            @task(inject_context=True)
            def scheduled(ctx):
                mark(ctx, "scheduled")

            ctx.next_task(scheduled)
            ctx.cancel_workflow("user said stop")
            mark(ctx, "b:after")
            return "b"

        @task(inject_context=True)
        def c(ctx):
            mark(ctx, "c")

        a >> b >> c

    out = driver.run(wf)
    err = out.error
    assert isinstance(err, GraflowWorkflowCanceledError)
    assert "user said stop" in str(err)
    assert err.task_id == "b"
    assert out.completed_tasks == ["a"]
    assert out.channel.get("order") == ["a", "b:before", "b:after"]  # scheduled withdrawn
    assert out.stop_reason == "cancel_workflow"
    assert out.steps == 1


# --- inside group members (D18) --------------------------------------------------------


def test_terminate_in_member_stops_the_whole_run_without_group_successor(driver):
    with workflow("terminate_member") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")
            ctx.terminate_workflow("member says stop")
            return "a"

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def after(ctx):
            mark(ctx, "after")

        (a | b) >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.stop_reason == "terminate_workflow"
    assert "a" in out.completed_tasks
    assert "after" not in out.channel.get("order")
    assert "after" not in out.completed_tasks


def test_cancel_in_member_cancels_run_without_consulting_policy(driver):
    with workflow("cancel_member") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")
            ctx.cancel_workflow("member cancels")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def after(ctx):
            mark(ctx, "after")

        (a | b).with_execution(policy=FailIfConsultedPolicy()) >> after

    out = driver.run(wf)
    assert isinstance(out.error, GraflowWorkflowCanceledError)
    assert out.error.task_id == "a"
    assert "a" not in out.completed_tasks
    assert "after" not in (out.channel.get("order") or [])
    assert out.stop_reason == "cancel_workflow"


def test_terminate_in_member_lets_running_branches_finish():
    barrier = threading.Barrier(2, timeout=10)
    with workflow("terminate_running") as wf:

        @task(inject_context=True)
        def a(ctx):
            barrier.wait()
            ctx.terminate_workflow("stop")
            return "a"

        @task(inject_context=True)
        def b(ctx):
            barrier.wait()  # b is running when a terminates
            ctx.get_channel().append("order", "b")
            return "b"

        @task
        def after():
            return "after"

        (a | b).with_execution(backend="threading", backend_config={"thread_count": 2}) >> after

    _, ctx = wf.execute(ret_context=True)
    assert ctx.stop_reason == "terminate_workflow"
    assert ctx.channel.get("order") == ["b"]
    assert "b" in ctx.completed_tasks
    assert "after" not in ctx.completed_tasks


def test_cancel_in_member_lets_running_branches_finish():
    barrier = threading.Barrier(2, timeout=10)
    with workflow("cancel_running") as wf:

        @task(inject_context=True)
        def a(ctx):
            barrier.wait()
            ctx.cancel_workflow("stop")

        @task(inject_context=True)
        def b(ctx):
            barrier.wait()
            ctx.get_channel().append("order", "b")

        (a | b).with_execution(backend="threading", backend_config={"thread_count": 2})

    ctx = ExecutionContext.create(wf.graph, None)
    with pytest.raises(GraflowWorkflowCanceledError) as info:
        WorkflowEngine().execute(ctx)
    assert info.value.task_id == "a"
    assert ctx.channel.get("order") == ["b"]  # the running branch finished
    assert "a" not in ctx.completed_tasks


def test_control_flags_are_set_by_the_calls():
    flags = {}
    with workflow("flags") as wf:

        @task(inject_context=True)
        def a(ctx):
            ec = ctx.execution_context
            flags["before"] = (ec.terminate_called, ec.cancel_called, ec.goto_called)
            ctx.terminate_workflow("x")
            flags["after"] = ec.terminate_called

    wf.execute()
    assert flags["before"] == (False, False, False)
    assert flags["after"] is True
