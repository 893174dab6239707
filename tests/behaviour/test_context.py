"""`ExecutionContext` and `TaskExecutionContext`."""

from __future__ import annotations

import pickle
import re
import warnings
from typing import TypedDict

import cloudpickle
import pytest

from graflow import RetryPolicy, TaskExecutionContext, task, workflow
from graflow.core.context import (
    ExecutionContext,
    create_execution_context,
    execute_with_cycles,
)
from graflow.core.engine import WorkflowEngine
from graflow.core.graph import TaskGraph
from graflow.core.task import TaskWrapper
from graflow.exceptions import PayloadError
from graflow.trace import NoopTracer


def mark(ctx, name):
    ctx.get_channel().append("order", name)


def _ids(items):
    return [getattr(i, "task_id", i) for i in items]


def _graph(*ids, edges=()):
    g = TaskGraph()
    for tid in ids:
        g.add_node(TaskWrapper(tid, lambda tid=tid: tid, register_to_context=False))
    for u, v in edges:
        g.add_edge(u, v)
    return g


class Point(TypedDict):
    x: int
    y: int


# --- construction ----------------------------------------------------------------------


def test_constructor_defaults():
    ctx = ExecutionContext(_graph("a"))
    assert re.fullmatch(r"[0-9a-f]{32}", ctx.session_id)
    assert ctx.trace_id == ctx.session_id
    assert ctx.max_steps == 10000
    assert ctx.steps == 0
    assert ctx.default_max_retries == 0
    assert ctx.completed_tasks == []
    assert ctx.stop_reason is None
    assert ctx.max_steps_reached is False
    assert ctx.checkpoint_requested is False
    assert ctx.checkpoint_metadata is None
    assert isinstance(ctx.tracer, NoopTracer)
    assert ctx.queue is ctx.task_queue


def test_constructor_keeps_given_ids_and_settings():
    ctx = ExecutionContext(
        _graph("a"), "a", max_steps=5, default_max_retries=2, steps=3,
        session_id="abc", trace_id="trace-1", config={"other": 1},
    )
    assert ctx.session_id == "abc"
    assert ctx.trace_id == "trace-1"
    assert ctx.max_steps == 5
    assert ctx.steps == 3
    assert ctx.default_max_retries == 2
    assert ctx.start_node == "a"
    assert ctx.config.get("other") == 1


def test_channel_is_a_memory_channel_named_after_the_session():
    from graflow.channels.memory_channel import MemoryChannel

    ctx = ExecutionContext(_graph("a"))
    assert isinstance(ctx.channel, MemoryChannel)
    assert ctx.channel.name == ctx.session_id


def test_create_queues_the_single_start_candidate():
    ctx = ExecutionContext.create(_graph("a", "b", edges=[("a", "b")]))
    assert _ids(ctx.queue.to_list()) == ["a"]


def test_create_queues_given_start_node():
    ctx = ExecutionContext.create(_graph("a", "b"), "b")
    assert _ids(ctx.queue.to_list()) == ["b"]
    assert ctx.start_node == "b"


@pytest.mark.parametrize(
    "graph",
    [_graph(), _graph("a", "b"), _graph("a", "b", edges=[("a", "b"), ("b", "a")])],
    ids=["empty", "several", "none"],
)
def test_create_without_single_candidate_queues_nothing_and_does_not_raise(graph):
    ctx = ExecutionContext.create(graph)
    assert _ids(ctx.queue.to_list()) == []


def test_create_with_unknown_start_node_records_it_and_queues_nothing():
    ctx = ExecutionContext.create(_graph("a"), "ghost")
    assert ctx.start_node == "ghost"
    assert _ids(ctx.queue.to_list()) == []


def test_create_passes_session_id():
    ctx = ExecutionContext.create(_graph("a"), "a", session_id="12345", max_steps=7)
    assert ctx.session_id == "12345"
    assert ctx.max_steps == 7


# --- results and bookkeeping -----------------------------------------------------------


def test_results_live_under_result_key():
    ctx = ExecutionContext(_graph("a"))
    ctx.set_result("x", 5)
    assert ctx.channel.get("x.__result__") == 5
    assert ctx.get_result("x") == 5
    ctx.set_result("n", None)
    assert ctx.get_result("n", "default") is None
    assert ctx.get_result("missing") is None
    assert ctx.get_result("missing", 7) == 7


def test_mark_task_completed_keeps_order_and_uniqueness():
    ctx = ExecutionContext(_graph("a"))
    for tid in ("a", "b", "a", "c", "b"):
        ctx.mark_task_completed(tid)
    assert ctx.completed_tasks == ["a", "b", "c"]


def test_increment_step():
    ctx = ExecutionContext(_graph("a"))
    ctx.increment_step()
    ctx.increment_step()
    assert ctx.steps == 2


def test_add_to_queue_and_get_next_task_are_fifo():
    g = _graph("a", "b", "c")
    ctx = ExecutionContext(g)
    for tid in ("b", "c"):
        ctx.add_to_queue(g.get_node(tid))
    assert _ids(ctx.queue.to_list()) == ["b", "c"]
    assert ctx.get_next_task() == "b"
    assert ctx.get_next_task() == "c"
    assert ctx.is_completed()


def test_completed_tasks_unique_while_steps_count_activations(driver):
    with workflow("loop") as wf:

        @task
        def agent():
            pass

        @task
        def tool():
            pass

        agent >> tool >> agent

    out = driver.run(wf, "agent", max_steps=9)
    assert out.completed_tasks == ["agent", "tool"]
    assert out.steps == 9


def test_execute_method_runs_the_engine():
    with workflow("exec") as wf:

        @task
        def a():
            return "done"

    ctx = ExecutionContext.create(wf.graph, "a")
    assert ctx.execute() == "done"
    assert ctx.completed_tasks == ["a"]


def test_executing_task_binds_pushes_and_counts_cycles():
    with workflow("executing") as wf:

        @task(max_cycles=4)
        def a():
            return 1

    ctx = ExecutionContext.create(wf.graph, "a")
    with ctx.executing_task(a):
        tc = ctx.current_task_context
        assert isinstance(tc, TaskExecutionContext)
        assert ctx.current_task_id == "a"
        assert tc.task_id == "a"
        assert tc.cycle_count == 1
        assert tc.max_cycles == 4
        assert a.get_execution_context() is not None
    assert ctx.current_task_context is None


def test_control_flags_reset():
    with workflow("flags") as wf:

        @task
        def a():
            return 1

    ctx = ExecutionContext.create(wf.graph, "a")
    assert (ctx.goto_called, ctx.terminate_called, ctx.cancel_called) == (False, False, False)
    with ctx.executing_task(a):
        ctx.terminate_workflow("t")
        ctx.cancel_workflow("c")
        ctx.next_task(a, goto=True)
        assert (ctx.goto_called, ctx.terminate_called, ctx.cancel_called) == (True, True, True)
        ctx.reset_control_flags()
        assert (ctx.goto_called, ctx.terminate_called, ctx.cancel_called) == (False, False, False)


def test_checkpoint_request_flags():
    g = _graph("a")
    ctx = ExecutionContext.create(g, "a")
    assert ctx.checkpoint_requested is False
    with ctx.executing_task(g.get_node("a")):  # a request is made by the running task
        ctx.request_checkpoint({"stage": "one"}, path="somewhere/ck")
    assert ctx.checkpoint_requested is True
    assert ctx.checkpoint_request_metadata["stage"] == "one"
    assert ctx.checkpoint_request_path == "somewhere/ck"
    ctx.clear_checkpoint_request()
    assert ctx.checkpoint_requested is False
    assert not ctx.checkpoint_request_metadata
    assert ctx.checkpoint_request_path is None


def test_create_execution_context_helper():
    ctx = create_execution_context()
    assert ctx.graph.has_node("ROOT")
    assert ctx.max_steps == 10
    ctx2 = create_execution_context(start_node="S", max_steps=3)
    assert ctx2.graph.has_node("S")
    assert ctx2.max_steps == 3


def test_execute_with_cycles_runs_a_graph():
    ran = []
    g = TaskGraph()
    g.add_node(TaskWrapper("a", lambda: ran.append("a"), register_to_context=False))
    g.add_node(TaskWrapper("b", lambda: ran.append("b"), register_to_context=False))
    g.add_edge("a", "b")
    execute_with_cycles(g, "a", max_steps=10)
    assert ran == ["a", "b"]


# --- pickling and save/load ------------------------------------------------------------


def _stopped_context():
    with workflow("pickled") as wf:

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

        a >> b
        a >> c
        b >> d
    ctx = ExecutionContext.create(wf.graph, "a", max_steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        WorkflowEngine().execute(ctx)
    assert _ids(ctx.queue.to_list()) == ["b", "c"]
    return ctx


def test_pickled_context_keeps_state_queue_and_channel():
    ctx = _stopped_context()
    with ctx.executing_task(ctx.graph.get_node("b")):
        ctx.request_checkpoint({"k": 1})
    assert ctx.checkpoint_requested is True
    restored = cloudpickle.loads(cloudpickle.dumps(ctx))
    assert restored.session_id == ctx.session_id
    assert restored.steps == 1
    assert restored.completed_tasks == ["a"]
    assert _ids(restored.queue.to_list()) == ["b", "c"]  # restored in order
    assert restored.channel.get("a.__result__") == "A"
    assert restored.channel.get("order") == ["a"]
    assert restored.checkpoint_requested is False  # request flags reset on load
    restored.max_steps = 100
    assert WorkflowEngine().execute(restored) == "D"
    assert restored.completed_tasks == ["a", "b", "c", "d"]
    assert restored.channel.get("order") == ["a", "b", "c", "d"]


def test_save_and_load_round_trip(tmp_path):
    ctx = _stopped_context()
    path = tmp_path / "ctx.bin"
    ctx.save(str(path))
    loaded = ExecutionContext.load(str(path))
    assert loaded.session_id == ctx.session_id
    assert loaded.completed_tasks == ["a"]
    assert _ids(loaded.queue.to_list()) == ["b", "c"]
    assert loaded.channel.get("a.__result__") == "A"


def test_load_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        ExecutionContext.load(str(tmp_path / "absent.bin"))


def test_load_foreign_file_raises_payload_error(tmp_path):
    path = tmp_path / "foreign.bin"
    path.write_bytes(pickle.dumps({"not": "a graflow context"}))
    with pytest.raises(PayloadError) as info:
        ExecutionContext.load(str(path))
    assert isinstance(info.value, pickle.UnpicklingError)


# --- TaskExecutionContext --------------------------------------------------------------


def test_task_context_identity_members(driver):
    with workflow("identity") as wf:

        @task(inject_context=True)
        def probe(ctx):
            ctx.get_channel().set(
                "probe",
                {
                    "task_id": ctx.task_id,
                    "session_id": ctx.session_id,
                    "trace_id": ctx.trace_id,
                    "start_time_is_float": isinstance(ctx.start_time, float),
                    "graph_has_probe": ctx.graph.has_node("probe"),
                    "ec_session": ctx.execution_context.session_id,
                    "local_data_is_dict": isinstance(ctx.local_data, dict),
                },
            )

    out = driver.run(wf)
    assert out.error is None
    p = out.channel.get("probe")
    assert p["task_id"] == "probe"
    assert p["session_id"] == out.session_id == p["ec_session"]
    assert p["trace_id"] == out.session_id
    assert p["start_time_is_float"] and p["graph_has_probe"] and p["local_data_is_dict"]


def test_task_context_is_new_per_attempt_and_execution_context_is_the_run():
    seen = []
    with workflow("per_attempt") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.001))
        def flaky(ctx):
            seen.append(ctx)
            if ctx.attempt == 1:
                raise ValueError("first")

    _, run_ctx = wf.execute(ret_context=True)
    assert len(seen) == 2
    assert seen[0] is not seen[1]
    assert all(tc.execution_context is run_ctx for tc in seen)


def test_task_context_cycle_and_retry_members(driver):
    with workflow("counters") as wf:

        @task(inject_context=True, max_cycles=6,
              retry_policy=RetryPolicy(max_retries=2, initial_interval=0.001))
        def probe(ctx):
            ctx.get_channel().append(
                "seen",
                [ctx.cycle_count, ctx.max_cycles, ctx.can_iterate(), ctx.retry_count,
                 ctx.max_retries, ctx.attempt],
            )
            if ctx.attempt == 1:
                raise ValueError("first")

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("seen") == [[1, 6, True, 0, 2, 1], [1, 6, True, 1, 2, 2]]


def test_can_iterate_false_at_the_limit(driver):
    with workflow("can_iterate") as wf:

        @task(inject_context=True, max_cycles=2)
        def loop(ctx, data=None):
            ctx.get_channel().append("can", ctx.can_iterate())
            if ctx.can_iterate():
                ctx.next_iteration()

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("can") == [True, False]


def test_local_data_and_elapsed_time(driver):
    with workflow("local") as wf:

        @task(inject_context=True)
        def probe(ctx):
            ctx.set_local_data("k", [1])
            ctx.get_channel().set(
                "probe",
                [ctx.get_local_data("k"), ctx.get_local_data("absent"),
                 ctx.get_local_data("absent", 3), ctx.elapsed_time() >= 0.0],
            )

    out = driver.run(wf)
    assert out.channel.get("probe") == [[1], None, 3, True]


def test_local_data_is_task_local(driver):
    with workflow("local_scope") as wf:

        @task(inject_context=True)
        def a(ctx):
            ctx.set_local_data("k", "a-only")

        @task(inject_context=True)
        def b(ctx):
            ctx.get_channel().set("b_sees", ctx.get_local_data("k", "nothing"))

        a >> b

    out = driver.run(wf)
    assert out.channel.get("b_sees") == "nothing"


def test_get_channel_is_the_runs_channel(driver):
    with workflow("channel") as wf:

        @task(inject_context=True)
        def a(ctx):
            ctx.get_channel().set("from_a", 1)

        @task(inject_context=True)
        def b(ctx):
            ctx.get_channel().set("b_sees", ctx.get_channel().get("from_a"))

        a >> b

    out = driver.run(wf, initial_channel={"seed": "s"})
    assert out.channel.get("b_sees") == 1
    assert out.channel.get("seed") == "s"


def test_get_typed_channel(driver):
    with workflow("typed") as wf:

        @task(inject_context=True)
        def a(ctx):
            typed = ctx.get_typed_channel(Point)
            typed.set("pt", {"x": 1, "y": 2})
            ctx.get_channel().set("read_back", typed.get("pt"))

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("read_back") == {"x": 1, "y": 2}


def test_get_typed_channel_rejects_non_typed_dict(driver):
    with workflow("typed_bad") as wf:

        @task(inject_context=True)
        def a(ctx):
            try:
                ctx.get_typed_channel(dict)
            except ValueError:
                ctx.get_channel().set("raised", True)

    out = driver.run(wf)
    assert out.channel.get("raised") is True


def test_elapsed_time_is_monotonic_seconds():
    with workflow("elapsed") as wf:

        @task(inject_context=True)
        def a(ctx):
            first = ctx.elapsed_time()
            return isinstance(first, float) and 0.0 <= first <= ctx.elapsed_time()

    assert wf.execute() is True


def test_next_task_terminate_cancel_exist_on_execution_context_for_current_task():
    with workflow("ec_methods") as wf:

        @task(inject_context=True)
        def a(ctx):
            @task(inject_context=True)
            def extra(ctx):
                mark(ctx, "extra")

            ctx.execution_context.next_task(extra)
            mark(ctx, "a")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")
            ctx.execution_context.terminate_workflow("done")

        @task(inject_context=True)
        def c(ctx):
            mark(ctx, "c")

        a >> b >> c

    _, ctx = wf.execute(ret_context=True)
    assert ctx.channel.get("order") == ["a", "extra", "b"]
    assert ctx.stop_reason == "terminate_workflow"
