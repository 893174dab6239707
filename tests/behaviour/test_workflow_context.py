"""`graflow.core.workflow`: the context manager, `execute`, pass-throughs, helpers."""

from __future__ import annotations

import threading

import pytest

from graflow import task, workflow
from graflow.core.context import ExecutionContext
from graflow.core.graph import TaskGraph
from graflow.core.task import TaskWrapper
from graflow.core.workflow import (
    WorkflowContext,
    clear_workflow_context,
    current_workflow_context,
    get_current_workflow_context,
    require_workflow_context,
    set_current_workflow_context,
)
from graflow.exceptions import GraflowRuntimeError, GraphCompilationError


def test_workflow_is_a_context_manager_setting_the_current_workflow():
    assert get_current_workflow_context() is None
    with workflow("outer") as wf:
        assert isinstance(wf, WorkflowContext)
        assert wf.name == "outer"
        assert isinstance(wf.graph, TaskGraph)
        assert get_current_workflow_context() is wf
    assert get_current_workflow_context() is None


def test_nested_workflows_restore_the_outer_one():
    with workflow("outer") as outer:
        with workflow("inner") as inner:
            assert get_current_workflow_context() is inner

            @task
            def in_inner():
                pass

        assert get_current_workflow_context() is outer

        @task
        def in_outer():
            pass

    assert inner.graph.has_node("in_inner") and not outer.graph.has_node("in_inner")
    assert outer.graph.has_node("in_outer") and not inner.graph.has_node("in_outer")


def test_threads_start_with_no_current_workflow():
    seen = []
    with workflow("main"):
        t = threading.Thread(target=lambda: seen.append(get_current_workflow_context()))
        t.start()
        t.join()
    assert seen == [None]


def test_execute_with_explicit_start_node():
    with workflow("exec") as wf:

        @task
        def a():
            return "a"

        @task
        def b():
            return "b"

    assert wf.execute("b") == "b"


def test_execute_without_start_node_uses_the_single_candidate():
    with workflow("exec") as wf:

        @task
        def a():
            return 1

        @task
        def b(a):
            return a + 1

        a >> b
    assert wf.execute() == 2


def test_execute_with_several_candidates_raises_graph_compilation_error():
    with workflow("exec") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

    with pytest.raises(GraphCompilationError):
        wf.execute()


def test_execute_with_no_candidate_raises_graph_compilation_error():
    with workflow("exec") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        a >> b >> a
    with pytest.raises(GraphCompilationError):
        wf.execute()


def test_execute_on_empty_graph_raises_graph_compilation_error():
    wf = workflow("empty")
    with pytest.raises(GraphCompilationError):
        wf.execute()


def test_execute_with_unknown_start_node_raises_graph_compilation_error():
    with workflow("exec") as wf:

        @task
        def a():
            pass

    with pytest.raises(GraphCompilationError) as info:
        wf.execute("no_such_node")
    assert "no_such_node" in str(info.value)


def test_execute_writes_initial_channel_items_exactly_as_given():
    payload = {"k": [1, 2]}
    items = {"obj": payload, "s": {1, 2}, "t": (1, "x"), "none": None}
    with workflow("exec") as wf:

        @task
        def a():
            return 1

    result, ctx = wf.execute(initial_channel=items, ret_context=True)
    assert result == 1
    assert isinstance(ctx, ExecutionContext)
    assert ctx.channel.get("obj") is payload  # memory channel stores by reference
    assert ctx.channel.get("s") == {1, 2}
    assert ctx.channel.get("t") == (1, "x")
    assert ctx.channel.get("none", "missing") is None


def test_execute_ret_context_false_returns_result_only():
    with workflow("exec") as wf:

        @task
        def a():
            return ("x", 1)

    assert wf.execute() == ("x", 1)


def test_execute_builds_a_fresh_context_each_time():
    with workflow("exec") as wf:

        @task(inject_context=True)
        def a(ctx):
            return ctx.get_channel().append("runs", 1)

    r1, c1 = wf.execute(ret_context=True)
    r2, c2 = wf.execute(ret_context=True)
    assert (r1, r2) == (1, 1)
    assert c1 is not c2
    assert c1.session_id != c2.session_id


def test_execute_passes_max_steps_and_config():
    with workflow("exec") as wf:

        @task
        def a():
            return 1

    _, ctx = wf.execute(max_steps=5, config={"some_key": "kept"}, ret_context=True)
    assert ctx.max_steps == 5
    assert ctx.config.get("some_key") == "kept"


def test_workflow_add_node_add_edge_rename_pass_through():
    wf = workflow("manual")
    a = TaskWrapper("a", lambda: "a", register_to_context=False)
    b = TaskWrapper("b", lambda: "b", register_to_context=False)
    wf.add_node("a", a)
    wf.add_node("b", b)
    wf.add_node("a", TaskWrapper("a", lambda: "other", register_to_context=False),
                skip_if_exists=True)
    wf.add_edge("a", "b")
    assert wf.graph.get_node("a") is a
    assert list(wf.graph.edges) == [("a", "b")]
    wf.rename_node("b", "bee")
    assert list(wf.graph.edges) == [("a", "bee")]
    assert wf.execute("a") == "b"


def test_show_info_and_visualize_dependencies_print_text(capsys):
    with workflow("info") as wf:

        @task
        def first_task():
            pass

        @task
        def second_task():
            pass

        first_task >> second_task
    wf.show_info()
    wf.visualize_dependencies()
    out = capsys.readouterr().out
    assert "first_task" in out
    assert "second_task" in out


def test_clear_resets_the_workflow_graph():
    with workflow("clear") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        a >> b
    wf.clear()
    assert list(wf.graph.nodes) == []
    assert list(wf.graph.edges) == []


def test_get_next_group_name_starts_at_one():
    wf = workflow("names")
    assert wf.get_next_group_name() == "ParallelGroup_1"


def test_get_current_workflow_context_create_if_not_exist():
    assert get_current_workflow_context() is None
    created = get_current_workflow_context(create_if_not_exist=True)
    assert isinstance(created, WorkflowContext)


def test_current_workflow_context_creates_and_sets():
    created = current_workflow_context()
    assert isinstance(created, WorkflowContext)
    assert get_current_workflow_context() is created
    assert current_workflow_context() is created


def test_require_workflow_context_raises_without_one():
    with pytest.raises(GraflowRuntimeError):
        require_workflow_context()
    with workflow("req") as wf:
        assert require_workflow_context() is wf


def test_set_and_clear_current_workflow_context():
    wf = workflow("manual")
    set_current_workflow_context(wf)
    assert get_current_workflow_context() is wf
    clear_workflow_context()
    assert get_current_workflow_context() is None
