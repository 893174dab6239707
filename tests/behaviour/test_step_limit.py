"""The step limit (see docs/execution.md)."""

from __future__ import annotations

import logging
import warnings

from graflow import task, workflow
from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine
from graflow.exceptions import MaxStepsExceeded


def mark(ctx, name):
    ctx.get_channel().append("order", name)


def _ids(items):
    return [getattr(i, "task_id", i) for i in items]


def _pipeline(name):
    with workflow(name) as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")
            return "A"

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")
            return "B"

        @task(inject_context=True)
        def c(ctx):
            mark(ctx, "c")
            return "C"

        @task(inject_context=True)
        def d(ctx):
            mark(ctx, "d")
            return "D"

        a >> b >> c >> d
    return wf


def test_step_limit_stops_the_run_and_reports_it(driver):
    wf = _pipeline("limit")
    out = driver.run(wf, max_steps=2)
    assert out.error is None
    assert out.stop_reason == "max_steps"
    assert out.max_steps_reached is True
    assert out.steps == 2
    assert out.completed_tasks == ["a", "b"]
    assert out.channel.get("order") == ["a", "b"]
    assert out.result == "B"  # the last completed task's result


def test_step_limit_on_a_static_loop(driver):
    with workflow("agent") as wf:

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
    assert out.channel.get("order") == ["agent", "tool"] * 3 + ["agent"]
    assert out.completed_tasks == ["agent", "tool"]


def test_exact_limit_with_empty_queue_is_not_a_truncation(driver):
    wf = _pipeline("exact")
    out = driver.run(wf, max_steps=4)
    assert out.error is None
    assert out.stop_reason == "drained"
    assert out.max_steps_reached is False
    assert out.steps == 4


def test_step_limit_warns_logs_and_keeps_next_task_at_queue_head(caplog):
    wf = _pipeline("limit_inproc")
    ctx = ExecutionContext.create(wf.graph, "a", max_steps=2)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        result = WorkflowEngine().execute(ctx)
    assert result == "B"
    assert sum(issubclass(w.category, MaxStepsExceeded) for w in caught) == 1
    assert any(
        r.name == "graflow.engine" and r.levelno == logging.WARNING for r in caplog.records
    )
    assert _ids(ctx.queue.to_list())[0] == "c"


def test_empty_queue_at_the_limit_gives_no_warning(caplog):
    wf = _pipeline("exact_inproc")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        _, ctx = wf.execute(max_steps=4, ret_context=True)
    assert not [w for w in caught if issubclass(w.category, MaxStepsExceeded)]
    assert not [r for r in caplog.records if r.name == "graflow.engine"
                and r.levelno >= logging.WARNING]
    assert ctx.stop_reason == "drained"


def test_raising_max_steps_and_executing_again_continues_the_run():
    wf = _pipeline("continue")
    ctx = ExecutionContext.create(wf.graph, "a", max_steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert WorkflowEngine().execute(ctx) == "B"
    assert ctx.max_steps_reached
    ctx.max_steps = 100
    assert WorkflowEngine().execute(ctx) == "D"
    assert ctx.completed_tasks == ["a", "b", "c", "d"]
    assert ctx.channel.get("order") == ["a", "b", "c", "d"]
    assert ctx.steps == 4
    assert ctx.stop_reason == "drained"
    assert ctx.max_steps_reached is False


def test_execute_returns_context_with_limit_flags():
    wf = _pipeline("flags")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, ctx = wf.execute(max_steps=3, ret_context=True)
    assert result == "C"
    assert ctx.max_steps_reached is True
    assert ctx.stop_reason == "max_steps"
    assert ctx.steps == 3
    assert any(issubclass(w.category, MaxStepsExceeded) for w in caught)
