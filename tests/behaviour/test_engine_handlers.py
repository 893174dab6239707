"""The engine, handlers and the tracer hook."""

from __future__ import annotations

import logging
import uuid

import pytest

from graflow import task, workflow
from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine
from graflow.core.handler import TaskHandler
from graflow.core.handlers.direct import DirectTaskHandler
from graflow.exceptions import ConfigError, GraflowRuntimeError
from graflow.trace import NoopTracer


class DoublingHandler(TaskHandler):
    """Runs the task and stores twice its result, as a handler must."""

    def execute_task(self, task, context):
        value = task.run() * 2
        context.set_result(task.task_id, value)
        context.channel.append("handled_by", task.task_id)
        return value

    def get_name(self):
        return "doubling"


class StoreTaggedHandler(TaskHandler):
    """Stores a tagged value and returns the plain one: the stored entry is the result."""

    def execute_task(self, task, context):
        value = task.run()
        context.set_result(task.task_id, ("stored", value))
        return value

    def get_name(self):
        return "tagged"


def _rec(name):
    def method(self, *args, **kwargs):
        self.calls.append(name)

    return method


class RecordingTracer(NoopTracer):
    """Records which hooks the engine calls (argument lists are not part of the interface)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    on_workflow_start = _rec("on_workflow_start")
    on_workflow_end = _rec("on_workflow_end")
    on_task_queued = _rec("on_task_queued")
    on_task_start = _rec("on_task_start")
    on_task_end = _rec("on_task_end")
    on_dynamic_task_added = _rec("on_dynamic_task_added")
    on_parallel_group_start = _rec("on_parallel_group_start")
    on_parallel_group_end = _rec("on_parallel_group_end")


def test_register_handler_routes_tasks_by_handler_type():
    with workflow("custom_handler") as wf:

        @task(handler="doubling")
        def a():
            return 21

        @task
        def b(a):
            return a + 1

        a >> b

    ctx = ExecutionContext.create(wf.graph, "a")
    engine = WorkflowEngine()
    engine.register_handler("doubling", DoublingHandler())
    assert engine.execute(ctx) == 43
    assert ctx.get_result("a") == 42
    assert ctx.channel.get("handled_by") == ["a"]


def test_the_result_is_what_the_handler_stored():
    with workflow("stored") as wf:

        @task(handler="tagged")
        def a():
            return 7

        @task
        def b(a):
            return a

        a >> b

    ctx = ExecutionContext.create(wf.graph, "a")
    engine = WorkflowEngine()
    engine.register_handler("tagged", StoreTaggedHandler())
    assert engine.execute(ctx) == ("stored", 7)
    assert ctx.get_result("a") == ("stored", 7)


def test_register_handler_can_override_direct():
    with workflow("override") as wf:

        @task
        def a():
            return 5

    ctx = ExecutionContext.create(wf.graph, "a")
    engine = WorkflowEngine()
    engine.register_handler("direct", DoublingHandler())
    assert engine.execute(ctx) == 10


def test_handler_registration_is_per_engine():
    with workflow("per_engine") as wf:

        @task(handler="doubling")
        def a():
            return 1

    engine = WorkflowEngine()
    engine.register_handler("doubling", DoublingHandler())
    ctx = ExecutionContext.create(wf.graph, "a")
    with pytest.raises(ConfigError):
        WorkflowEngine().execute(ctx)


def test_register_default_handler_applies_to_engines_created_afterwards():
    name = f"default_{uuid.uuid4().hex[:8]}"
    WorkflowEngine.register_default_handler(name, DoublingHandler())
    with workflow("default_handler") as wf:

        @task(handler=name)
        def a():
            return 4

    assert wf.execute() == 8  # wf.execute builds a fresh engine


def test_unknown_handler_is_a_config_error_at_execution():
    with workflow("unknown") as wf:

        @task(handler="nobody_registered_this")
        def a():
            return 1

    with pytest.raises(ConfigError) as info:
        wf.execute()
    assert isinstance(info.value, ValueError)
    assert "nobody_registered_this" in str(info.value)


def test_direct_handler_stores_result_and_exception():
    with workflow("direct") as wf:

        @task
        def ok():
            return "fine"

        @task
        def bad():
            raise ValueError("bad")

    ctx = ExecutionContext.create(wf.graph, "ok")
    handler = DirectTaskHandler()
    with ctx.executing_task(ok):
        assert handler.execute_task(ok, ctx) == "fine"
    assert ctx.get_result("ok") == "fine"
    with ctx.executing_task(bad), pytest.raises(ValueError):
        handler.execute_task(bad, ctx)
    assert isinstance(ctx.get_result("bad"), ValueError)


def test_task_handler_is_abstract():
    with pytest.raises(TypeError):
        TaskHandler()


def test_handler_result_feeds_downstream_parameters(driver):
    with workflow("direct_feeds") as wf:

        @task
        def a():
            return {"k": 1}

        @task
        def b(a):
            return a["k"] + 1

        a >> b

    out = driver.run(wf)
    assert out.result == 2
    assert out.channel.get("a.__result__") == {"k": 1}


def test_execute_start_task_id_runs_first():
    with workflow("start_task") as wf:

        @task(inject_context=True)
        def x(ctx):
            ctx.get_channel().append("order", "x")

        @task(inject_context=True)
        def y(ctx):
            ctx.get_channel().append("order", "y")

        @task(inject_context=True)
        def p(ctx):
            ctx.get_channel().append("order", "p")
            return "p"

        @task(inject_context=True)
        def q(ctx):
            ctx.get_channel().append("order", "q")
            return "q"

        x >> y
        p >> q

    ctx = ExecutionContext.create(wf.graph)  # two candidates: nothing queued
    assert WorkflowEngine().execute(ctx, start_task_id="p") == "q"
    assert ctx.channel.get("order") == ["p", "q"]


def test_execute_with_empty_queue_logs_a_warning(caplog):
    with workflow("empty_queue") as wf:

        @task
        def a():
            return 1

        @task
        def b():
            return 2

    ctx = ExecutionContext.create(wf.graph)  # two candidates: nothing queued
    with caplog.at_level(logging.WARNING):
        assert WorkflowEngine().execute(ctx) is None
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert ctx.completed_tasks == []


def test_tracer_hooks_are_called():
    tracer = RecordingTracer()
    with workflow("traced", tracer=tracer) as wf:

        @task(inject_context=True)
        def a(ctx):
            @task
            def extra():
                return 1

            ctx.next_task(extra)

        @task
        def b():
            return 1

        @task
        def c():
            return 1

        a >> (b | c)

    wf.execute()
    calls = tracer.calls
    assert calls[0] == "on_workflow_start"
    assert calls[-1] == "on_workflow_end"
    for name in ("on_task_queued", "on_task_start", "on_task_end", "on_dynamic_task_added",
                 "on_parallel_group_start", "on_parallel_group_end"):
        assert name in calls, name
    assert calls.count("on_task_start") == calls.count("on_task_end")


def test_tracer_workflow_end_is_called_when_the_run_raises():
    tracer = RecordingTracer()
    with workflow("traced_fail", tracer=tracer) as wf:

        @task
        def bad():
            raise ValueError("x")

    with pytest.raises(GraflowRuntimeError):
        wf.execute()
    assert tracer.calls[0] == "on_workflow_start"
    assert tracer.calls[-1] == "on_workflow_end"


def test_default_tracer_is_noop():
    ctx = ExecutionContext.create(workflow("w").graph)
    assert isinstance(ctx.tracer, NoopTracer)
