"""Upstream's ``GroupExecutor``, ``TaskCoordinator`` and ``ThreadingCoordinator``, called as
upstream's ``ParallelGroup.run`` and upstream's tests call them.

Upstream's engine runs a group node through
``GroupExecutor.execute_parallel_group(group_id, tasks, ctx, backend=..., backend_config=...,
policy=...)``; here those calls run the same branch code as a group node of a workflow.
In-process only (thread names, object identity); the pool variant is in
tests/distributed/test_upstream_path.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from graflow import task, workflow
from graflow.coordination import coordinator as up_coordinator
from graflow.coordination import executor as up_executor
from graflow.coordination import threading_coordinator as up_threading
from graflow.coordination.coordinator import CoordinationBackend, TaskCoordinator
from graflow.coordination.executor import GroupExecutor
from graflow.coordination.threading_coordinator import ThreadingCoordinator
from graflow.core import group_executor
from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine
from graflow.core.handlers.group_policy import AtLeastNGroupPolicy, StrictGroupPolicy
from graflow.core.task_context import TaskExecutionContext
from graflow.exceptions import (
    ConfigError,
    GraflowWorkflowCanceledError,
    MaxStepsExceeded,
    ParallelGroupError,
)


def _flow() -> Any:
    """Members that record the thread they ran on; ``a`` leads to ``after_a``; ``bad`` fails."""
    with workflow("coordination") as wf:

        @task(inject_context=True)
        def a(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("ran", ("a", threading.current_thread().name))
            return "A"

        @task(inject_context=True)
        def b(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("ran", ("b", threading.current_thread().name))
            return "B"

        @task
        def after_a() -> str:
            return "after"

        @task
        def bad() -> None:
            raise RuntimeError("bad member")

        a >> after_a
    return wf


def _members(wf: Any, *ids: str) -> list[Any]:
    return [wf.graph.get_node(i) for i in ids]


def test_the_upstream_paths_name_the_core_objects() -> None:
    assert up_executor.GroupExecutor is group_executor.GroupExecutor
    assert up_coordinator.GroupExecutor is GroupExecutor
    assert up_coordinator.CoordinationBackend is up_executor.CoordinationBackend is CoordinationBackend
    assert up_coordinator.TaskCoordinator is up_threading.TaskCoordinator is TaskCoordinator
    assert up_threading.ThreadingCoordinator is up_executor.ThreadingCoordinator is ThreadingCoordinator
    assert issubclass(ThreadingCoordinator, TaskCoordinator)
    from graflow.coordination.redis_coordinator import RedisCoordinator

    assert issubclass(RedisCoordinator, TaskCoordinator)


def test_backend_resolution_as_upstream() -> None:
    assert GroupExecutor.DEFAULT_BACKEND is CoordinationBackend.THREADING
    assert GroupExecutor._resolve_backend(None) is CoordinationBackend.THREADING
    assert GroupExecutor._resolve_backend("DIRECT") is CoordinationBackend.DIRECT
    assert GroupExecutor._resolve_backend(CoordinationBackend.REDIS) is CoordinationBackend.REDIS
    with pytest.raises(ValueError, match="'celery'"):
        GroupExecutor._resolve_backend("celery")


def test_members_run_on_threads_and_their_results_are_in_the_context() -> None:
    wf = _flow()
    ctx = ExecutionContext(wf.graph)
    GroupExecutor.execute_parallel_group("grp", _members(wf, "a", "b"), ctx)
    assert ctx.get_result("a") == "A" and ctx.get_result("b") == "B"
    assert ctx.get_result("after_a") == "after"  # a branch is the member and what it leads to
    assert sorted(ctx.completed_tasks) == ["a", "after_a", "b"]
    threads = {name for _, name in ctx.channel.get("ran")}
    assert threading.current_thread().name not in threads
    # The group is no node of the run: nothing completes it, and the workflow is unchanged.
    assert "grp" not in ctx.completed_tasks and "grp" not in wf.graph


def test_a_call_inside_a_workflow_block_leaves_its_graph_alone() -> None:
    with workflow("building") as wf:

        @task
        def x() -> int:
            return 1

        @task
        def y() -> int:
            return 2

        before = (wf.graph.nodes, wf.graph.edges)
        ctx = ExecutionContext(wf.graph)
        GroupExecutor.execute_parallel_group("side", [x, y], ctx, backend="direct")
        assert (wf.graph.nodes, wf.graph.edges) == before
    assert ctx.get_result("x") == 1 and ctx.get_result("y") == 2


def test_direct_backend_runs_members_in_order_in_the_calling_thread() -> None:
    wf = _flow()
    ctx = ExecutionContext(wf.graph)
    GroupExecutor.execute_parallel_group("grp", _members(wf, "b", "a"), ctx, backend=CoordinationBackend.DIRECT)
    here = threading.current_thread().name
    assert ctx.channel.get("ran") == [("b", here), ("a", here)]
    assert ctx.completed_tasks == ["b", "a", "after_a"]


def test_direct_execute_takes_a_policy_instance() -> None:
    wf = _flow()
    ctx = ExecutionContext(wf.graph)
    GroupExecutor.direct_execute("grp", _members(wf, "a", "bad"), ctx, AtLeastNGroupPolicy(1))
    assert ctx.get_result("a") == "A"
    with pytest.raises(ParallelGroupError):
        GroupExecutor.direct_execute("grp", _members(wf, "a", "bad"), ctx, AtLeastNGroupPolicy(2))


def test_strict_policy_fails_the_group_with_the_failed_member() -> None:
    wf = _flow()
    ctx = ExecutionContext(wf.graph)
    with pytest.raises(ParallelGroupError) as info:
        GroupExecutor.execute_parallel_group("grp", _members(wf, "a", "bad"), ctx, policy="strict")
    err = info.value
    assert err.group_id == "grp" and [t for t, _ in err.failed_tasks] == ["bad"]
    assert err.successful_tasks == ["a"] and "bad member" in str(err)
    assert ctx.get_result("a") == "A"  # the member that succeeded is recorded all the same


@pytest.mark.parametrize("policy", ["best_effort", AtLeastNGroupPolicy(1)], ids=["best_effort", "at_least_1"])
def test_lenient_policies_let_the_group_pass(policy: Any) -> None:
    wf = _flow()
    ctx = ExecutionContext(wf.graph)
    GroupExecutor.execute_parallel_group("grp", _members(wf, "a", "bad"), ctx, policy=policy)
    assert ctx.get_result("a") == "A" and "bad" not in ctx.completed_tasks


def test_backend_config_wins_over_the_context_config_and_sizes_the_threads() -> None:
    wf = _flow()
    one = ExecutionContext(wf.graph, config={"thread_count": 1})
    GroupExecutor.execute_parallel_group("grp", _members(wf, "a", "b"), one)
    assert len({name for _, name in one.channel.get("ran")}) == 1  # one thread for both

    with workflow("meet") as meet:
        gate = threading.Barrier(2, timeout=30)

        @task
        def left() -> str:
            gate.wait()  # returns only if both members run at once
            return "left"

        @task
        def right() -> str:
            gate.wait()
            return "right"

    two = ExecutionContext(meet.graph, config={"thread_count": 1})
    GroupExecutor.execute_parallel_group("grp", [left, right], two, backend_config={"thread_count": 2})
    assert two.get_result("left") == "left" and two.get_result("right") == "right"


def test_threading_coordinator_owns_its_threads() -> None:
    wf = _flow()
    ctx = ExecutionContext(wf.graph)
    coordinator = ThreadingCoordinator(thread_count=2)
    assert coordinator.thread_count == 2 and coordinator._executor is None
    assert ThreadingCoordinator().thread_count > 0
    try:
        coordinator.execute_group("grp", _members(wf, "a", "b"), ctx, StrictGroupPolicy())
        assert coordinator._executor is not None
        names = {name for _, name in ctx.channel.get("ran")}
        assert names and all(n.startswith("ThreadingCoordinator") for n in names)
        assert ctx.get_result("after_a") == "after"
        with pytest.raises(ParallelGroupError):
            coordinator.execute_group("grp", _members(wf, "a", "bad"), ctx, StrictGroupPolicy())
    finally:
        coordinator.shutdown()
    assert coordinator._executor is None


def test_a_coordinator_written_for_upstream_implements_execute_group() -> None:
    with pytest.raises(TypeError):
        TaskCoordinator()  # type: ignore[abstract]

    class Sequential(TaskCoordinator):
        def execute_group(self, group_id: str, tasks: list[Any], execution_context: Any, policy: Any) -> None:
            GroupExecutor.direct_execute(group_id, tasks, execution_context, policy)

    wf = _flow()
    ctx = ExecutionContext(wf.graph)
    Sequential().execute_group("grp", _members(wf, "a", "b"), ctx, StrictGroupPolicy())
    assert ctx.get_result("b") == "B"


def test_members_must_be_tasks() -> None:
    ctx = ExecutionContext(_flow().graph)
    with pytest.raises(TypeError, match="member 'a' is a str, not a task"):
        GroupExecutor.execute_parallel_group("grp", ["a"], ctx)  # type: ignore[list-item]


def test_redis_backend_needs_a_redis_channel() -> None:
    wf = _flow()
    ctx = ExecutionContext(wf.graph)
    for backend in ("redis", CoordinationBackend.REDIS):
        with pytest.raises(ConfigError, match="channel_backend='redis'") as info:
            GroupExecutor.execute_parallel_group("grp", _members(wf, "a", "b"), ctx, backend=backend)
        assert "'grp'" in str(info.value) and "'memory'" in str(info.value)
    assert ctx.completed_tasks == []  # refused before any member ran


# -- called from inside a task, as upstream's ParallelGroup.run is ------------------------


def _caller_flow(member_does: str) -> Any:
    with workflow(f"caller_{member_does}") as wf:

        @task(inject_context=True)
        def member(ctx: TaskExecutionContext) -> str:
            if member_does == "terminate":
                ctx.terminate_workflow("member ended the run")
            elif member_does == "cancel":
                ctx.cancel_workflow("member canceled the run")
            return "m"

        @task
        def other() -> str:
            return "o"

        @task(inject_context=True)
        def caller(ctx: TaskExecutionContext) -> str:
            run = ctx.execution_context
            GroupExecutor.execute_parallel_group("inner", [run.graph.get_node("member"), run.graph.get_node("other")], run)
            return "caller"

        @task
        def after() -> str:
            return "after"

        caller >> after
    return wf


def test_a_task_can_run_a_group_and_the_run_goes_on() -> None:
    wf = _caller_flow("nothing")
    ctx = ExecutionContext.create(wf.graph, "caller")
    assert WorkflowEngine().execute(ctx) == "after"
    assert ctx.get_result("member") == "m" and ctx.get_result("other") == "o"
    assert ctx.completed_tasks[0] in ("member", "other") and ctx.completed_tasks[-2:] == ["caller", "after"]


def test_a_member_that_terminates_ends_the_callers_run() -> None:
    ctx = ExecutionContext.create(_caller_flow("terminate").graph, "caller")
    assert WorkflowEngine().execute(ctx) == "caller"
    assert ctx.stop_reason == "terminate_workflow" and "after" not in ctx.completed_tasks


def test_a_member_that_cancels_cancels_the_callers_run() -> None:
    ctx = ExecutionContext.create(_caller_flow("cancel").graph, "caller")
    with pytest.raises(GraflowWorkflowCanceledError, match="member canceled the run"):
        WorkflowEngine().execute(ctx)
    assert "after" not in ctx.completed_tasks


def test_a_cancel_without_a_calling_task_raises() -> None:
    wf = _caller_flow("cancel")
    ctx = ExecutionContext(wf.graph)
    with pytest.raises(GraflowWorkflowCanceledError, match="member canceled the run") as info:
        GroupExecutor.execute_parallel_group("grp", _members(wf, "member", "other"), ctx)
    assert info.value.task_id == "member"


def test_a_checkpoint_asked_for_in_a_member_is_written_for_a_caller_less_group(tmp_path: Path) -> None:
    with workflow("saving") as wf:

        @task(inject_context=True)
        def saver(ctx: TaskExecutionContext) -> str:
            ctx.checkpoint({"note": "mid-group"}, path=str(tmp_path / "cp"))
            return "saved"

        @task
        def plain() -> str:
            return "plain"

    ctx = ExecutionContext(wf.graph)
    GroupExecutor.execute_parallel_group("grp", [saver, plain], ctx)
    assert ctx.last_checkpoint_path is not None and ctx.last_checkpoint_path.startswith(str(tmp_path))
    assert ctx.checkpoint_metadata is not None and ctx.checkpoint_metadata["user_metadata"]["note"] == "mid-group"


def test_branches_stopped_by_max_steps_leave_the_group_unjudged() -> None:
    wf = _flow()
    ctx = ExecutionContext(wf.graph, max_steps=1)
    with pytest.warns(MaxStepsExceeded, match="group 'grp' stopped at max_steps=1"):
        GroupExecutor.execute_parallel_group("grp", _members(wf, "a", "bad"), ctx, backend="direct")
    assert ctx.completed_tasks == ["a"]  # bad never ran, and strict did not judge it
