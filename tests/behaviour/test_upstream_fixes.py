"""The deliberate differences from upstream Graflow that the core must show, one named test each
(and more where a fix has several faces)."""

from __future__ import annotations

import logging
import threading
import warnings

from graflow import task, workflow
from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine
from graflow.exceptions import MaxStepsExceeded, ParallelGroupError


def mark(ctx, name):
    ctx.get_channel().append("order", name)


def _ids(items):
    return [getattr(i, "task_id", i) for i in items]


# --- D2 --------------------------------------------------------------------------------


def test_d2_auto_start_ignores_group_members():
    with workflow("d2") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def c(ctx):
            mark(ctx, "c")

        @task(inject_context=True)
        def d(ctx):
            mark(ctx, "d")
            return "d"

        a >> (b | c) >> d

    assert wf.graph.get_start_nodes() == ["a"]
    result, ctx = wf.execute(ret_context=True)  # must not raise GraphCompilationError
    assert result == "d"
    order = ctx.channel.get("order")
    assert order[0] == "a" and order[-1] == "d"
    assert sorted(order[1:3]) == ["b", "c"]


def test_d2_auto_start_on_driver(driver):
    with workflow("d2") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def c(ctx):
            mark(ctx, "c")

        @task(inject_context=True)
        def d(ctx):
            mark(ctx, "d")

        a >> (b | c) >> d

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert order[0] == "a" and order[-1] == "d" and sorted(order) == ["a", "b", "c", "d"]


# --- D3 --------------------------------------------------------------------------------


def test_d3_task_or_group_runs_x_once(driver):
    with workflow("d3") as wf:

        @task(inject_context=True)
        def x(ctx):
            mark(ctx, "x")

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def t(ctx):
            mark(ctx, "t")

        g = a | b
        same = x | g
        g >> t

    assert same is g
    assert g.tasks[0] is x
    assert not any("x" in edge for edge in wf.graph.edges)
    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert order.count("x") == 1
    assert sorted(order) == ["a", "b", "t", "x"]
    assert order[-1] == "t"


def test_d3_group_or_task_runs_x_once(driver):
    with workflow("d3b") as wf:

        @task(inject_context=True)
        def x(ctx):
            mark(ctx, "x")

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        (a | b) | x

    out = driver.run(wf)
    assert out.error is None
    assert sorted(out.channel.get("order")) == ["a", "b", "x"]


# --- D4 --------------------------------------------------------------------------------


def test_d4_hand_built_diamond_runs_sink_once_after_both(driver):
    with workflow("d4") as wf:

        @task(inject_context=True)
        def fetch(ctx):
            mark(ctx, "fetch")

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def store(ctx):
            mark(ctx, "store")
            return "stored"

        wf.add_edge("fetch", "a")
        wf.add_edge("fetch", "b")
        wf.add_edge("a", "store")
        wf.add_edge("b", "store")

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert order[0] == "fetch" and order[-1] == "store"
    assert sorted(order) == ["a", "b", "fetch", "store"]
    assert out.result == "stored"
    _, ctx = wf.execute(ret_context=True)  # in-process the queue order is exact
    assert ctx.channel.get("order") == ["fetch", "a", "b", "store"]


def test_d4_agent_tool_agent_still_loops_until_max_steps(driver):
    with workflow("d4_loop") as wf:

        @task(inject_context=True)
        def agent(ctx):
            mark(ctx, "agent")

        @task(inject_context=True)
        def tool(ctx):
            mark(ctx, "tool")

        agent >> tool >> agent

    out = driver.run(wf, "agent", max_steps=6)
    assert out.error is None
    assert out.channel.get("order") == ["agent", "tool"] * 3
    assert out.stop_reason == "max_steps"


# --- D5 --------------------------------------------------------------------------------


def test_d5_deferred_checkpoint_in_member_is_taken_at_group_level(tmp_path, monkeypatch):
    """A deferred request by a member is not handled when the member completes but when the
    group node completes; the assertions on `checkpoint_metadata` / `last_checkpoint_path`
    below check the checkpoint written then."""
    monkeypatch.chdir(tmp_path)
    seen = {}
    with workflow("d5") as wf:

        @task(inject_context=True)
        def a(ctx):
            ctx.checkpoint(metadata={"from": "a"}, path=str(tmp_path / "ck" / "d5"))

        @task(inject_context=True)
        def b(ctx):
            ec = ctx.execution_context
            seen["in_b"] = (ec.checkpoint_requested, ec.last_checkpoint_path)

        @task(inject_context=True)
        def after(ctx):
            ec = ctx.execution_context
            seen["after"] = (ec.checkpoint_requested, ec.last_checkpoint_path is not None)

        g = (a | b).set_group_name("G").with_execution(backend="direct")
        g >> after

    _, ctx = wf.execute(ret_context=True)
    # while the group runs, nothing has been written yet (a completed before b started)
    assert seen["in_b"][1] is None
    # after the group completed, the request has been handled
    assert seen["after"] == (False, True)
    assert ctx.checkpoint_requested is False
    # the group-level auto keys (docs/execution.md, "Parallel groups")
    user = ctx.checkpoint_metadata["user_metadata"]
    assert user["task_id"] == "G"
    assert user["requested_by"] == ["a"]
    assert user["from"] == "a"


def test_d5_failed_group_writes_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with workflow("d5_fail") as wf:

        @task(inject_context=True)
        def a(ctx):
            ctx.checkpoint(metadata={"from": "a"})

        @task
        def b():
            raise ValueError("member fails")

        (a | b).with_execution(backend="direct")

    ctx = ExecutionContext.create(wf.graph)
    try:
        WorkflowEngine().execute(ctx)
    except ParallelGroupError:
        pass
    else:
        raise AssertionError("the group should have failed")
    assert ctx.last_checkpoint_path is None
    assert list(tmp_path.iterdir()) == []


# --- D6 --------------------------------------------------------------------------------


def test_d6_step_limit_is_reported_and_resumable(caplog):
    with workflow("d6") as wf:

        @task
        def agent():
            return "agent"

        @task
        def tool():
            return "tool"

        agent >> tool >> agent

    ctx = ExecutionContext.create(wf.graph, "agent", max_steps=7)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        result = WorkflowEngine().execute(ctx)
    assert any(issubclass(w.category, MaxStepsExceeded) for w in caught)
    assert any(r.name == "graflow.engine" and r.levelno == logging.WARNING
               for r in caplog.records)
    assert ctx.stop_reason == "max_steps"
    assert ctx.max_steps_reached is True
    assert ctx.steps == 7
    assert result == "agent"
    assert _ids(ctx.queue.to_list())[0] == "tool"  # the next task stays queued
    ctx.max_steps = 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        WorkflowEngine().execute(ctx)  # continues
    assert ctx.steps == 10
    assert ctx.stop_reason == "max_steps"


def test_d6_on_driver(driver):
    with workflow("d6") as wf:

        @task(inject_context=True)
        def agent(ctx):
            mark(ctx, "agent")

        @task(inject_context=True)
        def tool(ctx):
            mark(ctx, "tool")

        agent >> tool >> agent

    out = driver.run(wf, "agent", max_steps=7)
    assert out.error is None
    assert out.stop_reason == "max_steps"
    assert out.max_steps_reached is True
    assert out.steps == 7
    assert len(out.channel.get("order")) == 7


# --- D11 -------------------------------------------------------------------------------


def test_d11_new_dynamic_task_keeps_successors_inside_workflow_block(driver):
    with workflow("d11") as wf:

        @task(inject_context=True)
        def process(ctx):
            @task(inject_context=True)
            def extra(ctx):
                mark(ctx, "extra")

            ctx.next_task(extra)
            mark(ctx, "main")

        @task(inject_context=True)
        def after(ctx):
            mark(ctx, "after")

        process >> after
        out = driver.run(wf)  # run inside the `with workflow()` block, as in E3
    assert out.error is None
    got = out.channel.get("order")
    if driver.name.startswith("pool"):  # extra and after are both ready at once and may run side by side
        assert got[0] == "main" and sorted(got[1:]) == ["after", "extra"]
    else:
        assert got == ["main", "extra", "after"]


def test_d11_e3_prints_main_extra_after(capsys):
    with workflow("dyn") as wf:

        @task(inject_context=True)
        def process(ctx):
            @task
            def extra():
                print("extra")

            ctx.next_task(extra)
            print("main")

        @task
        def after():
            print("after")

        process >> after
        wf.execute()
    assert capsys.readouterr().out.split() == ["main", "extra", "after"]


def test_d11_iterating_task_successors_run_once_after_last_iteration(driver):
    with workflow("d11_iter") as wf:

        @task(inject_context=True)
        def refine(ctx, data=0):
            mark(ctx, f"refine{data}")
            if data < 2:
                ctx.next_iteration(data + 1)

        @task(inject_context=True)
        def publish(ctx):
            mark(ctx, "publish")

        refine >> publish

    out = driver.run(wf)
    assert out.channel.get("order") == ["refine0", "refine1", "refine2", "publish"]


# --- D17 -------------------------------------------------------------------------------


def test_d17_members_share_channel_and_failed_member_writes_stay(driver):
    with workflow("d17") as wf:

        @task(inject_context=True)
        def ok1(ctx):
            ctx.get_channel().append("rows", "ok1")
            ctx.get_channel().set("ok1_key", 1)

        @task(inject_context=True)
        def ok2(ctx):
            ctx.get_channel().append("rows", "ok2")

        @task(inject_context=True)
        def bad(ctx):
            ctx.get_channel().append("rows", "bad")
            ctx.get_channel().set("bad_key", "kept")
            raise ValueError("bad member")

        @task(inject_context=True)
        def collect(ctx):
            return sorted(ctx.get_channel().get("rows"))

        (ok1 | ok2 | bad).with_execution(policy="best_effort") >> collect

    out = driver.run(wf)
    assert out.error is None
    assert out.result == ["bad", "ok1", "ok2"]
    assert out.channel.get("bad_key") == "kept"
    assert out.channel.get("ok1_key") == 1


def test_d17_member_writes_are_visible_to_later_members_without_merge():
    with workflow("d17_direct") as wf:

        @task(inject_context=True)
        def first(ctx):
            ctx.get_channel().set("shared", "from-first")

        @task(inject_context=True)
        def second(ctx):
            return ctx.get_channel().get("shared")

        (first | second).with_execution(backend="direct")

    _, ctx = wf.execute(ret_context=True)
    assert ctx.get_result("second") == "from-first"


# --- D18 -------------------------------------------------------------------------------


def test_d18_terminate_in_member_acts_on_the_whole_run(driver):
    with workflow("d18") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")
            ctx.terminate_workflow("stop everything")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def after(ctx):
            mark(ctx, "after")

        (a | b).with_execution(backend="direct") >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.stop_reason == "terminate_workflow"
    assert "after" not in out.channel.get("order")
    assert "after" not in out.completed_tasks


def test_d18_running_branches_finish_before_the_run_stops():
    barrier = threading.Barrier(2, timeout=10)
    with workflow("d18_threads") as wf:

        @task(inject_context=True)
        def a(ctx):
            barrier.wait()
            ctx.terminate_workflow("stop")

        @task(inject_context=True)
        def b(ctx):
            barrier.wait()
            ctx.get_channel().set("b_finished", True)

        @task
        def after():
            return "after"

        (a | b).with_execution(backend="threading", backend_config={"thread_count": 2}) >> after

    _, ctx = wf.execute(ret_context=True)
    assert ctx.channel.get("b_finished") is True
    assert ctx.stop_reason == "terminate_workflow"
    assert "after" not in ctx.completed_tasks


# --- D19 -------------------------------------------------------------------------------


def test_d19_with_execution_policy_none_keeps_policy(driver):
    with workflow("d19") as wf:

        @task
        def good():
            return 1

        @task
        def bad():
            raise ValueError("tolerated")

        @task
        def after():
            return "after"

        g = (good | bad).with_execution(policy="best_effort")
        g.with_execution(backend="direct")  # policy=None: keep best_effort
        g.with_execution()
        g >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.result == "after"


def test_d19_with_execution_backend_none_keeps_backend():
    seen = []
    with workflow("d19_backend") as wf:

        @task
        def a():
            seen.append(threading.get_ident())

        @task
        def b():
            seen.append(threading.get_ident())

        g = (a | b).with_execution(backend="direct")
        g.with_execution(policy="best_effort")  # backend=None: keep direct

    wf.execute()
    assert seen == [threading.get_ident()] * 2
