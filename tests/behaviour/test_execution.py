"""The completion sequence, the join rule and results (see docs/execution.md)."""

from __future__ import annotations

import logging

from graflow import RetryPolicy, task, workflow
from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine
from graflow.exceptions import GraflowRuntimeError


def mark(ctx, name):
    ctx.get_channel().append("order", name)


def idx(order, name):
    return order.index(name)


# --- the completion sequence -----------------------------------------------------------


def _fifo_workflow():
    with workflow("fifo") as wf:

        @task(inject_context=True)
        def s(ctx):
            mark(ctx, "s")

        @task(inject_context=True)
        def x(ctx):
            mark(ctx, "x")

        @task(inject_context=True)
        def y(ctx):
            mark(ctx, "y")

        @task(inject_context=True)
        def x2(ctx):
            mark(ctx, "x2")

        s >> x
        s >> y
        x >> x2
    return wf


def test_successors_run_after_their_predecessor(driver):
    out = driver.run(_fifo_workflow())
    assert out.error is None
    order = out.channel.get("order")
    assert sorted(order) == ["s", "x", "x2", "y"]
    assert order[0] == "s"
    assert idx(order, "x") < idx(order, "x2")
    assert out.steps == 4


def test_queue_is_fifo_over_edge_insertion_order():
    _, ctx = _fifo_workflow().execute(ret_context=True)
    assert ctx.channel.get("order") == ["s", "x", "y", "x2"]
    assert ctx.completed_tasks == ["s", "x", "y", "x2"]


def _dyn_order_workflow():
    with workflow("dyn_order") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a:start")

            @task(inject_context=True)
            def x(ctx):
                mark(ctx, "x")

            @task(inject_context=True)
            def y(ctx):
                mark(ctx, "y")

            ctx.next_task(x)
            ctx.next_task(y)
            mark(ctx, "a:end")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        a >> b
    return wf


def test_scheduled_activations_never_start_before_the_task_completes(driver):
    out = driver.run(_dyn_order_workflow())
    assert out.error is None
    order = out.channel.get("order")
    assert order[:2] == ["a:start", "a:end"]
    assert sorted(order[2:]) == ["b", "x", "y"]


def test_dynamic_activations_are_queued_in_call_order_before_static_successors():
    _, ctx = _dyn_order_workflow().execute(ret_context=True)
    assert ctx.channel.get("order") == ["a:start", "a:end", "x", "y", "b"]


def test_failed_attempt_withdraws_the_activations_it_scheduled(driver):
    with workflow("withdraw") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.001))
        def a(ctx):
            mark(ctx, f"a{ctx.attempt}")
            if ctx.attempt == 1:

                @task(inject_context=True)
                def ghost(ctx):
                    mark(ctx, "ghost")

                ctx.next_task(ghost)
                raise ValueError("first attempt fails after scheduling")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        a >> b

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("order") == ["a1", "a2", "b"]
    assert out.completed_tasks == ["a", "b"]


def test_failed_run_does_not_run_activations_of_the_failed_attempt(driver):
    with workflow("withdraw_fail") as wf:

        @task(inject_context=True)
        def a(ctx):
            @task(inject_context=True)
            def ghost(ctx):
                mark(ctx, "ghost")

            ctx.next_task(ghost)
            raise ValueError("fails")

    out = driver.run(wf)
    assert isinstance(out.error, GraflowRuntimeError)
    assert out.channel.get("order") is None
    assert out.completed_tasks == []


def test_failed_attempt_clears_its_checkpoint_request(tmp_path, monkeypatch):
    """A failed attempt's checkpoint request is cleared (the flags; files: tests/checkpoints)."""
    monkeypatch.chdir(tmp_path)
    with workflow("ckpt_flag") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.001))
        def a(ctx):
            ec = ctx.execution_context
            ctx.get_channel().append("flags", ec.checkpoint_requested)
            if ctx.attempt == 1:
                ctx.checkpoint(metadata={"stage": "x"})
                ctx.get_channel().append("flags", ec.checkpoint_requested)
                raise ValueError("fails after requesting a checkpoint")
            return "ok"

    result, ctx = wf.execute(ret_context=True)
    assert result == "ok"
    assert ctx.channel.get("flags") == [False, True, False]
    assert not ctx.checkpoint_requested
    assert list(tmp_path.iterdir()) == []  # the failed attempt's request wrote nothing


# --- join rule -------------------------------------------------------------------------


def test_hand_built_diamond_runs_sink_once_after_both(driver):
    with workflow("diamond") as wf:

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

        fetch >> a >> store
        fetch >> b >> store

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert order[0] == "fetch" and order[-1] == "store"
    assert sorted(order) == ["a", "b", "fetch", "store"]
    assert out.completed_tasks.count("store") == 1
    assert out.steps == 4


def test_join_waits_for_the_longer_branch(driver):
    with workflow("uneven") as wf:

        @task(inject_context=True)
        def s(ctx):
            mark(ctx, "s")

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        @task(inject_context=True)
        def a2(ctx):
            mark(ctx, "a2")

        @task(inject_context=True)
        def a3(ctx):
            mark(ctx, "a3")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def j(ctx):
            mark(ctx, "j")

        s >> a >> a2 >> a3 >> j
        s >> b >> j

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert order.count("j") == 1
    assert order[-1] == "j"
    assert sorted(order) == ["a", "a2", "a3", "b", "j", "s"]


def test_join_ignores_predecessors_unreachable_from_the_start_node(driver):
    with workflow("unreachable") as wf:

        @task(inject_context=True)
        def s(ctx):
            mark(ctx, "s")

        @task(inject_context=True)
        def u(ctx):
            mark(ctx, "u")

        @task(inject_context=True)
        def t(ctx):
            mark(ctx, "t")

        s >> t
        u >> t

    out = driver.run(wf, "s")
    assert out.error is None
    assert out.channel.get("order") == ["s", "t"]


def test_join_after_a_group_runs_once(driver):
    with workflow("group_join") as wf:

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
        def side(ctx):
            mark(ctx, "side")

        @task(inject_context=True)
        def s(ctx):
            mark(ctx, "s")

        g = a | b
        s >> g >> c
        s >> side >> c

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert order.count("c") == 1
    assert order[-1] == "c"
    assert out.completed_tasks.index(g.task_id) < out.completed_tasks.index("c")


def test_loop_closing_edge_retriggers_its_target(driver):
    with workflow("loop") as wf:

        @task(inject_context=True)
        def start(ctx):
            mark(ctx, "start")

        @task(inject_context=True)
        def body(ctx):
            mark(ctx, "body")
            if len(ctx.get_channel().get("order")) >= 6:
                ctx.next_task(done, goto=True)

        @task(inject_context=True)
        def check(ctx):
            mark(ctx, "check")

        @task(inject_context=True)
        def done(ctx):
            mark(ctx, "done")

        start >> body >> check >> body

    out = driver.run(wf, "start")
    assert out.error is None
    assert out.channel.get("order") == ["start", "body", "check", "body", "check", "body", "done"]


def _goto_join_workflow():
    with workflow("goto_join") as wf:

        @task(inject_context=True)
        def fetch(ctx):
            mark(ctx, "fetch")

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")
            ctx.next_task(store)  # existing id: auto-goto, a's successors skipped

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def store(ctx):
            mark(ctx, "store")

        fetch >> a >> store
        fetch >> b >> store
    return wf


def test_goto_to_a_join_target_runs_it_once(driver):
    out = driver.run(_goto_join_workflow())
    assert out.error is None
    order = out.channel.get("order")
    assert sorted(order) == ["a", "b", "fetch", "store"]
    assert idx(order, "a") < idx(order, "store")


def test_goto_to_a_join_target_clears_its_arrival_set():
    """Join rule: queuing T for another reason (goto/next_task) clears A(T); b's later arrival
    alone does not queue `store` a second time."""
    _, ctx = _goto_join_workflow().execute(ret_context=True)
    assert ctx.channel.get("order") == ["fetch", "a", "b", "store"]


def test_unsatisfied_join_never_runs_its_target(driver):
    with workflow("unsatisfied") as wf:

        @task(inject_context=True)
        def s(ctx):
            mark(ctx, "s")

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

            @task(inject_context=True)
            def z(ctx):
                mark(ctx, "z")

            ctx.next_task(z, goto=True)  # b's static successor t never hears from b

        @task(inject_context=True)
        def t(ctx):
            mark(ctx, "t")

        s >> a >> t
        s >> b >> t

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert sorted(order) == ["a", "b", "s", "z"]  # t never runs
    assert idx(order, "b") < idx(order, "z")
    assert out.stop_reason == "drained"


def test_run_ending_with_waiting_join_logs_one_warning_naming_it(caplog):
    with workflow("unsatisfied_log") as wf:

        @task
        def s():
            pass

        @task
        def a():
            pass

        @task(inject_context=True)
        def b(ctx):
            @task
            def z():
                pass

            ctx.next_task(z, goto=True)

        @task
        def waiting_sink():
            pass

        s >> a >> waiting_sink
        s >> b >> waiting_sink

    with caplog.at_level(logging.WARNING):
        wf.execute()
    hits = [r for r in caplog.records if "waiting_sink" in r.getMessage()]
    assert len(hits) == 1
    assert hits[0].levelno == logging.WARNING


# --- results ---------------------------------------------------------------------------


def test_run_result_is_last_completed_tasks_return_value_even_none(driver):
    with workflow("results") as wf:

        @task
        def a():
            return "a-value"

        @task
        def b():
            return None

        a >> b

    out = driver.run(wf)
    assert out.error is None
    assert out.result is None
    assert out.channel.get("a.__result__") == "a-value"
    assert out.channel.get("b.__result__", "missing") is None
    assert out.stop_reason == "drained"
    assert out.max_steps_reached is False


def test_run_result_when_a_group_completes_last_is_none(driver):
    with workflow("results_group") as wf:

        @task
        def a():
            return "a"

        @task
        def b():
            return "b"

        @task
        def c():
            return "c"

        g = b | c
        a >> g

    out = driver.run(wf)
    assert out.error is None
    assert out.completed_tasks[-1] == g.task_id
    assert out.result is None


def test_every_task_result_is_stored_under_result_key(driver):
    with workflow("result_keys") as wf:

        @task
        def one():
            return 1

        @task
        def two():
            return {"k": [2]}

        @task
        def three():
            return (3, "x")

        one >> two >> three

    out = driver.run(wf)
    assert out.channel.get("one.__result__") == 1
    assert out.channel.get("two.__result__") == {"k": [2]}
    assert out.channel.get("three.__result__") == (3, "x")
    assert out.result == (3, "x")


def test_get_result_reads_the_result_key_with_default(driver):
    with workflow("get_result") as wf:

        @task
        def a():
            return 10

        @task(inject_context=True)
        def b(ctx):
            ctx.get_channel().set(
                "seen", [ctx.get_result("a"), ctx.get_result("nope"), ctx.get_result("nope", 7)]
            )

        a >> b

    out = driver.run(wf)
    assert out.channel.get("seen") == [10, None, 7]


def test_failed_run_stop_reason_is_task_failed(driver):
    with workflow("failed") as wf:

        @task
        def a():
            return 1

        @task
        def bad():
            raise ValueError("nope")

        @task
        def never():
            return 2

        a >> bad >> never

    out = driver.run(wf)
    assert isinstance(out.error, GraflowRuntimeError)
    assert out.stop_reason == "task_failed"
    assert out.completed_tasks == ["a"]


def test_engine_execute_returns_the_result_and_sets_stop_reason():
    with workflow("engine") as wf:

        @task
        def a():
            return "done"

    ctx = ExecutionContext.create(wf.graph, "a")
    assert WorkflowEngine().execute(ctx) == "done"
    assert ctx.stop_reason == "drained"
    assert ctx.completed_tasks == ["a"]
