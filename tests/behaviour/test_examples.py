"""The example programs E1–E4, verbatim (in-process, through `wf.execute`), plus driver variants."""

# ruff: noqa: E701, E702

from __future__ import annotations

import warnings

from graflow import parallel, task, workflow
from graflow.core.handlers.group_policy import AtLeastNGroupPolicy
from graflow.exceptions import MaxStepsExceeded


@task(inject_context=True)
def fetch(ctx, source: str) -> str:
    ctx.get_channel().append("rows", source); return source


# --- E1 --------------------------------------------------------------------------------


def test_e1_pipeline_with_resolved_parameters_verbatim():
    with workflow("pipeline") as wf:
        @task
        def load(n: int) -> list[int]: return list(range(n))
        @task
        def total(load: list[int]) -> int: return sum(load)        # receives load's result
        @task
        def double(total: int, factor: int = 2) -> int: return total * factor
        load >> total >> double
        assert wf.execute(initial_channel={"n": 5}) == 20          # sum(0..4) * 2


def test_e1_on_driver(driver):
    with workflow("pipeline") as wf:
        @task
        def load(n: int) -> list[int]: return list(range(n))
        @task
        def total(load: list[int]) -> int: return sum(load)
        @task
        def double(total: int, factor: int = 2) -> int: return total * factor
        load >> total >> double
    out = driver.run(wf, initial_channel={"n": 5})
    assert out.error is None
    assert out.result == 20
    assert out.completed_tasks == ["load", "total", "double"]


# --- E2 --------------------------------------------------------------------------------


def test_e2_fan_out_fan_in_verbatim():
    with workflow("fan") as wf:
        a, b, c = (fetch(task_id=s, source=s) for s in ("api", "db", "cache"))
        @task(inject_context=True)
        def merge(ctx): return sorted(ctx.get_channel().get("rows"))
        parallel(a, b, c).with_execution(policy=AtLeastNGroupPolicy(min_success=2)) >> merge
        assert wf.execute() == ["api", "cache", "db"]              # D2 start detection, D17 shared appends
    assert not wf.graph.has_node("fetch")  # the template never becomes an orphan node


def test_e2_on_driver(driver):
    with workflow("fan") as wf:
        a, b, c = (fetch(task_id=s, source=s) for s in ("api", "db", "cache"))
        @task(inject_context=True)
        def merge(ctx): return sorted(ctx.get_channel().get("rows"))
        parallel(a, b, c).with_execution(policy=AtLeastNGroupPolicy(min_success=2)) >> merge
    assert not wf.graph.has_node("fetch")
    out = driver.run(wf)
    assert out.error is None
    assert out.result == ["api", "cache", "db"]


def test_e2_plain_edges_form_merges_exactly_once(driver):
    with workflow("fan_edges") as wf:
        @task
        def start(): pass
        a, b, c = (fetch(task_id=s, source=s) for s in ("api", "db", "cache"))
        @task(inject_context=True)
        def merge(ctx):
            ctx.get_channel().append("merges", "merge")
            return sorted(ctx.get_channel().get("rows"))
        for t in (a, b, c):
            start >> t
            t >> merge
    assert not wf.graph.has_node("fetch")
    out = driver.run(wf)
    assert out.error is None
    assert out.result == ["api", "cache", "db"]
    assert out.channel.get("merges") == ["merge"]
    assert out.completed_tasks.count("merge") == 1
    assert out.completed_tasks[-1] == "merge"


def test_e2_plain_edges_form_with_wf_execute():
    with workflow("fan_edges") as wf:
        @task
        def start(): pass
        a, b, c = (fetch(task_id=s, source=s) for s in ("api", "db", "cache"))
        @task(inject_context=True)
        def merge(ctx): return sorted(ctx.get_channel().get("rows"))
        for t in (a, b, c):
            start >> t
            t >> merge
        result, ctx = wf.execute(ret_context=True)
    assert result == ["api", "cache", "db"]
    assert ctx.completed_tasks == ["start", "api", "db", "cache", "merge"]
    assert ctx.steps == 5


# --- E3 --------------------------------------------------------------------------------


def test_e3_dynamic_tasks_verbatim(capsys):
    with workflow("dyn") as wf:
        @task(inject_context=True)
        def process(ctx):
            @task
            def extra(): print("extra")
            ctx.next_task(extra)                                   # new task: successors kept
            print("main")
        @task
        def after(): print("after")
        process >> after
        wf.execute()
    assert capsys.readouterr().out.split() == ["main", "extra", "after"]


def test_e3_on_driver(driver):
    with workflow("dyn") as wf:
        @task(inject_context=True)
        def process(ctx):
            @task(inject_context=True)
            def extra(ctx): ctx.get_channel().append("printed", "extra")
            ctx.next_task(extra)
            ctx.get_channel().append("printed", "main")
        @task(inject_context=True)
        def after(ctx): ctx.get_channel().append("printed", "after")
        process >> after
    out = driver.run(wf)
    assert out.error is None
    got = out.channel.get("printed")
    if driver.name.startswith("pool"):  # extra and after are both ready at once and may run side by side
        assert got[0] == "main" and sorted(got[1:]) == ["after", "extra"]
    else:
        assert got == ["main", "extra", "after"]


# --- E4 --------------------------------------------------------------------------------


def test_e4_iteration_static_loop_and_step_limit_verbatim():
    with workflow("loops") as wf:
        @task(inject_context=True, max_cycles=5)
        def refine(ctx, data=None):
            n = (data or 0) + 1
            if n < 3: ctx.next_iteration(n)
            return n
        @task
        def publish(refine: int) -> str: return f"v{refine}"
        refine >> publish
        assert wf.execute() == "v3"          # publish ran once, after the last iteration
    with workflow("agent") as wf2:
        @task(inject_context=True)
        def agent(ctx): pass                 # never terminates
        @task
        def tool(): pass
        agent >> tool >> agent
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, ctx = wf2.execute("agent", max_steps=7, ret_context=True)
        assert ctx.max_steps_reached and ctx.stop_reason == "max_steps" and ctx.steps == 7
        assert any(issubclass(w.category, MaxStepsExceeded) for w in caught)


def test_e4_on_driver(driver):
    with workflow("loops") as wf:
        @task(inject_context=True, max_cycles=5)
        def refine(ctx, data=None):
            n = (data or 0) + 1
            if n < 3: ctx.next_iteration(n)
            return n
        @task(inject_context=True)
        def publish(ctx, refine: int) -> str:
            ctx.get_channel().append("published", refine)
            return f"v{refine}"
        refine >> publish
    out = driver.run(wf)
    assert out.error is None
    assert out.result == "v3"
    assert out.channel.get("published") == [3]
    with workflow("agent") as wf2:
        @task(inject_context=True)
        def agent(ctx): pass
        @task
        def tool(): pass
        agent >> tool >> agent
    out2 = driver.run(wf2, "agent", max_steps=7)
    assert out2.error is None
    assert out2.max_steps_reached and out2.stop_reason == "max_steps" and out2.steps == 7
