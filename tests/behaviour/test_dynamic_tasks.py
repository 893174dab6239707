"""Dynamic tasks (`next_task`) and iterations (`next_iteration`); see docs/execution.md."""

from __future__ import annotations

import re

import pytest

from graflow import RetryPolicy, task, workflow
from graflow.exceptions import CycleLimitExceededError, DuplicateTaskError


def mark(ctx, name):
    ctx.get_channel().append("order", name)


def _ids(items):
    return [getattr(i, "task_id", i) for i in items]


# --- next_task -------------------------------------------------------------------------


def _new_task_workflow():
    with workflow("new_task") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

            @task(inject_context=True)
            def extra(ctx):
                mark(ctx, "extra")

            ctx.next_task(extra)

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        a >> b
    return wf


def test_new_task_runs_and_static_successors_are_kept(driver):
    out = driver.run(_new_task_workflow())
    assert out.error is None
    order = out.channel.get("order")
    assert order[0] == "a"
    assert sorted(order) == ["a", "b", "extra"]


def test_new_task_is_queued_before_the_static_successors():
    _, ctx = _new_task_workflow().execute(ret_context=True)
    assert ctx.channel.get("order") == ["a", "extra", "b"]
    assert ctx.completed_tasks == ["a", "extra", "b"]


def test_new_task_is_added_without_edges_and_joins_the_graph():
    with workflow("new_task_graph") as wf:

        @task(inject_context=True)
        def a(ctx):
            @task
            def extra():
                return "x"

            ctx.next_task(extra)

        @task
        def b():
            return "b"

        a >> b

    _, ctx = wf.execute(ret_context=True)
    assert ctx.graph.has_node("extra")
    assert list(ctx.graph.successors("extra")) == []
    assert list(ctx.graph.predecessors("extra")) == []


def test_existing_graph_task_is_an_auto_goto_skipping_successors(driver):
    with workflow("auto_goto") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")
            ctx.next_task(c)

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def c(ctx):
            mark(ctx, "c")

        a >> b

    out = driver.run(wf, "a")
    assert out.error is None
    assert out.channel.get("order") == ["a", "c"]


def test_task_added_by_earlier_next_task_is_existing_for_later_calls(driver):
    with workflow("known_dynamic") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

            @task("x", inject_context=True)
            def x_first(ctx):
                mark(ctx, "x1")

            ctx.next_task(x_first)  # new: successors kept

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

            @task("x", inject_context=True)  # same id, no DuplicateTaskError during a run
            def x_second(ctx):
                mark(ctx, "x2")

            ctx.next_task(x_second)  # known: auto-goto, and this object replaces the stored one

        @task(inject_context=True)
        def c(ctx):
            mark(ctx, "c")

        a >> b >> c

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert sorted(order) == ["a", "b", "x1", "x2"]  # c skipped, the replacement object ran
    assert order[0] == "a"
    assert order.index("b") < order.index("x2")


def test_goto_true_with_new_task_skips_successors(driver):
    with workflow("goto_new") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

            @task(inject_context=True)
            def jump(ctx):
                mark(ctx, "jump")

            ctx.next_task(jump, goto=True)

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        a >> b

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("order") == ["a", "jump"]


def test_goto_true_with_existing_task_skips_successors(driver):
    with workflow("goto_existing") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")
            ctx.next_task(c, goto=True)

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def c(ctx):
            mark(ctx, "c")

        a >> b

    out = driver.run(wf, "a")
    assert out.error is None
    assert out.channel.get("order") == ["a", "c"]


def test_goto_back_to_an_earlier_task_reruns_it(driver):
    with workflow("goto_back") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")
            if ctx.get_channel().get("order").count("b") < 2:
                ctx.next_task(a, goto=True)

        @task(inject_context=True)
        def c(ctx):
            mark(ctx, "c")

        a >> b >> c

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("order") == ["a", "b", "a", "b", "c"]
    assert out.completed_tasks == ["a", "b", "c"]
    assert out.steps == 5


def test_next_task_returns_the_id_and_is_visible_in_queue_immediately():
    seen = {}
    with workflow("queue_visible") as wf:

        @task(inject_context=True)
        def a(ctx):
            @task
            def extra():
                return "extra"

            seen["before"] = _ids(ctx.execution_context.queue.to_list())
            seen["tid"] = ctx.next_task(extra)
            seen["after"] = _ids(ctx.execution_context.queue.to_list())

    assert wf.execute() == "extra"
    assert seen["tid"] == "extra"
    assert "extra" not in seen["before"]
    assert "extra" in seen["after"]


def test_task_created_in_a_body_is_not_registered_without_next_task():
    with workflow("no_register") as wf:

        @task(inject_context=True)
        def a(ctx):
            @task
            def unused():
                return 1

            @task
            def template(x):
                return x

            template(task_id="instance", x=1)
            return "a"

    result, ctx = wf.execute(ret_context=True)
    assert result == "a"
    assert not ctx.graph.has_node("unused")
    assert not ctx.graph.has_node("instance")
    assert ctx.completed_tasks == ["a"]


def test_no_duplicate_task_error_during_a_run(driver):
    with workflow("no_dup") as wf:

        @task(inject_context=True)
        def a(ctx):
            @task("a", inject_context=True)  # same id as the running task
            def shadow(ctx):
                mark(ctx, "shadow")

            mark(ctx, "a")

    out = driver.run(wf)
    assert out.error is None
    assert not isinstance(out.error, DuplicateTaskError)
    assert out.channel.get("order") == ["a"]


def test_instance_created_in_a_body_runs_with_bound_kwargs(driver):
    with workflow("dyn_instance") as wf:

        @task(inject_context=True)
        def worker(ctx, n: int = 0):
            mark(ctx, f"{ctx.task_id}:{n}")

        @task(inject_context=True)
        def spawn(ctx):
            for n in (1, 2):
                ctx.next_task(worker(task_id=f"w{n}", n=n))

    out = driver.run(wf, "spawn")
    assert out.error is None
    assert sorted(out.channel.get("order")) == ["w1:1", "w2:2"]


# --- next_iteration --------------------------------------------------------------------


def test_iteration_ids_data_and_cycle_counts(driver):
    with workflow("iter") as wf:

        @task(inject_context=True, max_cycles=5)
        def refine(ctx, data=None):
            n = (data or 0) + 1
            rec = {"id": ctx.task_id, "data": data, "cycle": ctx.cycle_count,
                   "can": ctx.can_iterate(), "max": ctx.max_cycles}
            if n < 3:
                rec["next"] = ctx.next_iteration(n)
            ctx.get_channel().append("recs", rec)
            return n

    out = driver.run(wf)
    assert out.error is None
    recs = out.channel.get("recs")
    assert [r["data"] for r in recs] == [None, 1, 2]
    assert [r["cycle"] for r in recs] == [1, 2, 3]
    assert [r["max"] for r in recs] == [5, 5, 5]
    assert all(r["can"] for r in recs)
    assert recs[0]["id"] == "refine"
    for n, r in enumerate(recs[1:], start=1):
        m = re.fullmatch(r"refine_cycle_(\d+)_[0-9a-f]{8}", r["id"])
        assert m, r["id"]
        assert int(m.group(1)) == n
    # next_iteration returns the id of the activation that runs next
    assert recs[0]["next"] == recs[1]["id"]
    assert recs[1]["next"] == recs[2]["id"]
    assert out.result == 3


def test_iteration_without_data_passes_no_positional_argument(driver):
    with workflow("iter_nodata") as wf:

        @task(inject_context=True)
        def loop(ctx, data="default"):
            ctx.get_channel().append("seen", data)
            if ctx.cycle_count < 2:
                ctx.next_iteration()

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("seen") == ["default", "default"]


def test_iteration_other_parameters_resolve_from_channel(driver):
    with workflow("iter_params") as wf:

        @task(inject_context=True)
        def loop(ctx, data=0, factor=1):
            ctx.get_channel().append("seen", data * factor)
            if data < 2:
                ctx.next_iteration(data + 1)

    out = driver.run(wf, initial_channel={"factor": 10})
    assert out.error is None
    assert out.channel.get("seen") == [0, 10, 20]


def test_iteration_of_unknown_base_raises_value_error(driver):
    with workflow("iter_unknown") as wf:

        @task(inject_context=True)
        def a(ctx):
            try:
                ctx.execution_context.next_iteration(task_id="no_such_base")
            except ValueError as exc:
                mark(ctx, "value-error" if "no_such_base" in str(exc) else str(exc))

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("order") == ["value-error"]


def test_cycle_limit_error_fields_and_propagation(driver):
    with workflow("iter_limit") as wf:

        @task(inject_context=True, max_cycles=2)
        def loop(ctx, data=None):
            mark(ctx, ctx.cycle_count)
            ctx.next_iteration()

    out = driver.run(wf)
    assert type(out.error) is CycleLimitExceededError
    assert out.error.task_id == "loop"
    assert out.error.cycle_count == 2
    assert out.error.max_cycles == 2
    assert out.channel.get("order") == [1, 2]


def test_iteration_inherits_base_retry_settings_and_retries_do_not_count_as_cycles(driver):
    with workflow("iter_retry") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.001))
        def loop(ctx, data=0):
            ctx.get_channel().append("seen", [data, ctx.attempt, ctx.cycle_count])
            if data == 1 and ctx.attempt == 1:
                raise ValueError("iteration fails once")
            if data < 2:
                ctx.next_iteration(data + 1)
            return data

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("seen") == [[0, 1, 1], [1, 1, 2], [1, 2, 2], [2, 1, 3]]
    assert out.result == 2


def test_iteration_inherits_base_max_cycles(driver):
    with workflow("iter_inherit_cycles") as wf:

        @task(inject_context=True, max_cycles=3)
        def loop(ctx, data=None):
            ctx.get_channel().append("max", ctx.max_cycles)
            if ctx.can_iterate():
                ctx.next_iteration()

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("max") == [3, 3, 3]


def test_base_successors_run_once_after_the_last_iteration(driver):
    with workflow("iter_pipeline") as wf:

        @task(inject_context=True)
        def refine(ctx, data=None):
            n = (data or 0) + 1
            mark(ctx, f"refine{n}")
            if n < 3:
                ctx.next_iteration(n)
            return n

        @task(inject_context=True)
        def publish(ctx, refine: int):
            mark(ctx, f"publish:{refine}")
            return f"v{refine}"

        refine >> publish

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("order") == ["refine1", "refine2", "refine3", "publish:3"]
    assert out.result == "v3"


def test_iteration_results_are_stored_under_base_id_too(driver):
    with workflow("iter_results") as wf:

        @task(inject_context=True)
        def refine(ctx, data=None):
            n = (data or 0) + 1
            ctx.get_channel().append("ids", ctx.task_id)
            if n < 3:
                ctx.next_iteration(n)
            return n * 100

        @task(inject_context=True)
        def after(ctx):
            return ctx.get_result("refine")

        refine >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.result == 300
    assert out.channel.get("refine.__result__") == 300
    ids = out.channel.get("ids")
    assert out.channel.get(f"{ids[1]}.__result__") == 200
    assert out.channel.get(f"{ids[2]}.__result__") == 300


def test_iterating_base_counts_as_predecessor_for_joins(driver):
    with workflow("iter_join") as wf:

        @task(inject_context=True)
        def s(ctx):
            mark(ctx, "s")

        @task(inject_context=True)
        def refine(ctx, data=0):
            mark(ctx, f"refine{data}")
            if data < 2:
                ctx.next_iteration(data + 1)

        @task(inject_context=True)
        def other(ctx):
            mark(ctx, "other")

        @task(inject_context=True)
        def j(ctx):
            mark(ctx, "j")

        s >> refine >> j
        s >> other >> j

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert order.count("j") == 1
    assert order[-1] == "j"
    assert sorted(order) == ["j", "other", "refine0", "refine1", "refine2", "s"]


def test_next_iteration_via_execution_context_for_current_task(driver):
    with workflow("iter_ec") as wf:

        @task(inject_context=True)
        def loop(ctx, data=0):
            mark(ctx, data)
            if data < 1:
                ctx.execution_context.next_iteration(data + 1)

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("order") == [0, 1]


@pytest.mark.parametrize("count", [1, 4])
def test_cycle_count_is_one_based_and_counts_activations(driver, count):
    with workflow("cycle_count") as wf:

        @task(inject_context=True, max_cycles=10)
        def loop(ctx, data=1):
            ctx.get_channel().append("cycles", ctx.cycle_count)
            if data < count:
                ctx.next_iteration(data + 1)

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("cycles") == list(range(1, count + 1))
