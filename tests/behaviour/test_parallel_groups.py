"""Parallel groups (branches, shared context) and group policies (see docs/execution.md)."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from graflow import RetryPolicy, TaskExecutionContext, parallel, task, workflow
from graflow.core.context import create_execution_context
from graflow.core.handler import TaskResult
from graflow.core.handlers.group_policy import (
    AtLeastNGroupPolicy,
    BestEffortGroupPolicy,
    CriticalGroupPolicy,
    GroupExecutionPolicy,
    StrictGroupPolicy,
)
from graflow.core.task import ParallelGroup, TaskWrapper
from graflow.exceptions import GraflowRuntimeError, ParallelGroupError


def mark(ctx, name):
    ctx.get_channel().append("order", name)


def idx(order, name):
    return order.index(name)


def _chain_errors(err):
    """The error and its causes (graflow `cause` and Python `__cause__`)."""
    seen = []
    while err is not None and err not in seen:
        seen.append(err)
        err = getattr(err, "cause", None) or err.__cause__
    return seen


class PassAlwaysPolicy(GroupExecutionPolicy):
    """A custom policy that accepts any outcome."""

    def on_group_finished(self, group_id, tasks, results, context):
        return None


class RequireFirstMemberFailedPolicy(GroupExecutionPolicy):
    """A custom policy that fails the group unless its first member failed."""

    def on_group_finished(self, group_id, tasks, results, context):
        first = tasks[0].task_id
        if results[first].success:
            raise ParallelGroupError(
                "first member must fail", group_id, [], [t.task_id for t in tasks]
            )


# --- branches and the shared context ---------------------------------------------------


@pytest.mark.parametrize("backend", ["threading", "direct"])
def test_members_run_once_and_group_successor_runs_after_all(driver, backend):
    with workflow("fan") as wf:

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
        def c(ctx):
            mark(ctx, "c")

        @task(inject_context=True)
        def t(ctx):
            mark(ctx, "t")

        g = parallel(a, b, c).with_execution(backend=backend)
        s >> g >> t

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert order[0] == "s" and order[-1] == "t"
    assert sorted(order[1:-1]) == ["a", "b", "c"]
    done = out.completed_tasks
    assert sorted(done) == sorted(["s", "a", "b", "c", g.task_id, "t"])
    assert all(done.index(m) < done.index(g.task_id) for m in ("a", "b", "c"))
    assert done.index(g.task_id) < done.index("t")
    assert out.steps == 6  # members count as steps


def test_member_dynamic_task_runs_in_its_branch_before_group_completes(driver):
    with workflow("branch_dyn") as wf:

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

        @task(inject_context=True)
        def t(ctx):
            mark(ctx, "t")

        g = a | b
        g >> t

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert sorted(order) == ["a", "b", "extra", "t"]
    assert idx(order, "a") < idx(order, "extra") < idx(order, "t")
    assert out.completed_tasks.index("extra") < out.completed_tasks.index(g.task_id)


def test_member_iterations_run_in_its_branch_before_group_completes(driver):
    with workflow("branch_iter") as wf:

        @task(inject_context=True)
        def a(ctx, data=0):
            mark(ctx, f"a{data}")
            if data < 2:
                ctx.next_iteration(data + 1)

        @task(inject_context=True)
        def b(ctx):
            mark(ctx, "b")

        @task(inject_context=True)
        def t(ctx):
            mark(ctx, "t")

        (a | b) >> t

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert sorted(order) == ["a0", "a1", "a2", "b", "t"]
    assert idx(order, "a0") < idx(order, "a1") < idx(order, "a2") < idx(order, "t")
    assert order[-1] == "t"


def test_members_share_the_channel_and_appends_are_collected(driver):
    with workflow("shared") as wf:

        @task(inject_context=True)
        def w1(ctx):
            for i in range(50):
                ctx.get_channel().append("rows", ("w1", i))

        @task(inject_context=True)
        def w2(ctx):
            for i in range(50):
                ctx.get_channel().append("rows", ("w2", i))

        @task(inject_context=True)
        def w3(ctx):
            for i in range(50):
                ctx.get_channel().append("rows", ("w3", i))

        @task(inject_context=True)
        def collect(ctx):
            return len(ctx.get_channel().get("rows"))

        parallel(w1, w2, w3).with_execution(backend_config={"thread_count": 3}) >> collect

    out = driver.run(wf)
    assert out.error is None
    assert out.result == 150
    rows = out.channel.get("rows")
    assert sorted(rows) == sorted((w, i) for w in ("w1", "w2", "w3") for i in range(50))
    assert [i for w, i in rows if w == "w1"] == list(range(50))  # per-writer order kept


def test_many_concurrent_members_share_the_run_bookkeeping(driver):
    @task(inject_context=True)
    def worker(ctx, n: int = 0):
        ctx.get_channel().append("done", n)
        return n

    with workflow("many") as wf:
        members = [worker(task_id=f"m{i}", n=i) for i in range(8)]

        @task
        def after():
            return "after"

        g = parallel(*members).with_execution(backend_config={"thread_count": 8})
        g >> after

    out = driver.run(wf)
    assert out.error is None
    assert sorted(out.channel.get("done")) == list(range(8))
    assert sorted(out.completed_tasks[:8]) == [f"m{i}" for i in range(8)]
    assert out.completed_tasks[8:] == [g.task_id, "after"]
    assert out.steps == 10
    assert [out.channel.get(f"m{i}.__result__") for i in range(8)] == list(range(8))


def test_members_share_session_id(driver):
    with workflow("session") as wf:

        @task(inject_context=True)
        def a(ctx):
            ctx.get_channel().append("sids", ctx.session_id)

        @task(inject_context=True)
        def b(ctx):
            ctx.get_channel().append("sids", ctx.session_id)

        @task(inject_context=True)
        def after(ctx):
            ctx.get_channel().append("sids", ctx.session_id)

        (a | b) >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.channel.get("sids") == [out.session_id] * 3


def test_members_share_one_execution_context_in_process():
    seen = []
    with workflow("same_ctx") as wf:

        @task(inject_context=True)
        def a(ctx):
            seen.append((ctx.execution_context, ctx.get_channel()))

        @task(inject_context=True)
        def b(ctx):
            seen.append((ctx.execution_context, ctx.get_channel()))

        a | b

    _, run_ctx = wf.execute(ret_context=True)
    assert len(seen) == 2
    for ec, ch in seen:
        assert ec is run_ctx
        assert ch is run_ctx.channel


def test_nested_groups_run_every_member_once(driver):
    with workflow("nested") as wf:

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
        def t(ctx):
            mark(ctx, "t")

        inner = ParallelGroup([a, b], name="inner")
        outer = ParallelGroup([inner, c], name="outer")
        outer >> t

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert sorted(order) == ["a", "b", "c", "t"]
    assert order[-1] == "t"
    done = out.completed_tasks
    assert done.index("a") < done.index("inner") < done.index("outer")
    assert done.index("b") < done.index("inner")
    assert done.index("c") < done.index("outer") < done.index("t")


def test_member_with_retries_recovers_and_group_passes(driver):
    with workflow("member_retry") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=2, initial_interval=0.01))
        def flaky(ctx):
            mark(ctx, f"flaky{ctx.attempt}")
            if ctx.attempt < 3:
                raise ValueError("not yet")

        @task(inject_context=True)
        def ok(ctx):
            mark(ctx, "ok")

        @task(inject_context=True)
        def t(ctx):
            mark(ctx, "t")

        (flaky | ok) >> t

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert [x for x in order if x.startswith("flaky")] == ["flaky1", "flaky2", "flaky3"]
    assert order[-1] == "t"


def test_branch_fails_when_its_in_branch_task_fails(driver):
    with workflow("branch_fail") as wf:

        @task
        def a():
            return "a"

        @task
        def b():
            return "b"

        @task
        def c():
            raise ValueError("c failed")

        @task
        def t():
            return "t"

        g = (a | (b >> c)).set_group_name("G")
        g >> t

    out = driver.run(wf)
    assert isinstance(out.error, ParallelGroupError)
    assert out.error.group_id == "G"
    assert "t" not in out.completed_tasks


# --- policies --------------------------------------------------------------------------


def test_strict_is_default_and_a_failed_member_fails_the_group(driver):
    with workflow("strict") as wf:

        @task(inject_context=True)
        def good(ctx):
            ctx.get_channel().append("rows", "good")
            return "good"

        @task(inject_context=True)
        def bad(ctx):
            ctx.get_channel().append("rows", "bad-before-raise")
            raise ValueError("bad member")

        @task
        def after():
            return "after"

        g = (good | bad).set_group_name("G")
        g >> after

    out = driver.run(wf)
    err = out.error
    assert isinstance(err, ParallelGroupError)
    assert isinstance(err, GraflowRuntimeError)
    assert err.group_id == "G"
    assert [tid for tid, _ in err.failed_tasks] == ["bad"]
    assert "bad member" in err.failed_tasks[0][1]
    assert err.successful_tasks == ["good"]
    assert "after" not in out.completed_tasks
    assert "G" not in out.completed_tasks
    assert "good" in out.completed_tasks
    # D17: the failed member's writes stay
    assert sorted(out.channel.get("rows")) == ["bad-before-raise", "good"]


def test_strict_string_policy(driver):
    with workflow("strict_str") as wf:

        @task
        def good():
            return 1

        @task
        def bad():
            raise ValueError("x")

        (good | bad).with_execution(policy="strict")

    out = driver.run(wf)
    assert isinstance(out.error, ParallelGroupError)


@pytest.mark.parametrize("policy", ["best_effort", BestEffortGroupPolicy()])
def test_best_effort_never_fails_the_group(driver, policy):
    with workflow("best_effort") as wf:

        @task
        def good():
            return 1

        @task
        def bad():
            raise ValueError("x")

        @task
        def worse():
            raise KeyError("y")

        @task
        def after():
            return "after"

        parallel(good, bad, worse).with_execution(policy=policy) >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.result == "after"
    assert out.completed_tasks[-1] == "after"
    assert "bad" not in out.completed_tasks


def test_critical_policy_ignores_non_critical_failures(driver):
    with workflow("critical_ok") as wf:

        @task
        def must():
            return 1

        @task
        def optional():
            raise ValueError("optional failed")

        @task
        def after():
            return "after"

        (must | optional).with_execution(policy=CriticalGroupPolicy(["must"])) >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.result == "after"


def test_critical_policy_fails_when_a_critical_member_fails(driver):
    with workflow("critical_fail") as wf:

        @task
        def must():
            raise ValueError("critical failed")

        @task
        def optional():
            return 1

        @task
        def after():
            return "after"

        (must | optional).with_execution(policy=CriticalGroupPolicy(["must"])) >> after

    out = driver.run(wf)
    assert isinstance(out.error, ParallelGroupError)
    assert [tid for tid, _ in out.error.failed_tasks] == ["must"]
    assert "after" not in out.completed_tasks


def test_critical_policy_empty_list_raises_value_error():
    with pytest.raises(ValueError):
        CriticalGroupPolicy([])


def test_critical_policy_unknown_member_raises_value_error_when_group_finishes(driver):
    with workflow("critical_unknown") as wf:

        @task
        def a():
            return 1

        @task
        def b():
            return 2

        (a | b).with_execution(policy=CriticalGroupPolicy(["not_a_member"]))

    out = driver.run(wf)
    assert out.error is not None
    assert any(isinstance(e, ValueError) for e in _chain_errors(out.error))
    assert "not_a_member" in str(out.error)
    assert sorted(out.completed_tasks) == ["a", "b"]  # members ran; checked at the end


def test_at_least_n_passes_with_enough_successes(driver):
    with workflow("atleast_ok") as wf:

        @task
        def a():
            return 1

        @task
        def b():
            return 2

        @task
        def c():
            raise ValueError("c")

        @task
        def after():
            return "after"

        parallel(a, b, c).with_execution(policy=AtLeastNGroupPolicy(min_success=2)) >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.result == "after"


def test_at_least_n_fails_with_too_few_successes(driver):
    with workflow("atleast_fail") as wf:

        @task
        def a():
            return 1

        @task
        def b():
            raise ValueError("b")

        @task
        def c():
            raise ValueError("c")

        parallel(a, b, c).with_execution(policy=AtLeastNGroupPolicy(min_success=2))

    out = driver.run(wf)
    assert isinstance(out.error, ParallelGroupError)
    assert sorted(tid for tid, _ in out.error.failed_tasks) == ["b", "c"]
    assert out.error.successful_tasks == ["a"]


def test_at_least_zero_passes_when_every_member_fails(driver):
    with workflow("atleast_zero") as wf:

        @task
        def a():
            raise ValueError("a")

        @task
        def b():
            raise ValueError("b")

        @task
        def after():
            return "after"

        (a | b).with_execution(policy=AtLeastNGroupPolicy(min_success=0)) >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.result == "after"


def test_at_least_n_negative_raises_value_error():
    with pytest.raises(ValueError):
        AtLeastNGroupPolicy(min_success=-1)


def test_at_least_n_more_than_member_count_raises_value_error(driver):
    err = None
    try:
        with workflow("atleast_too_many") as wf:

            @task
            def a():
                return 1

            @task
            def b():
                return 2

            (a | b).with_execution(policy=AtLeastNGroupPolicy(min_success=3))
        err = driver.run(wf).error
    except ValueError as exc:  # raised when the policy is attached: also allowed
        err = exc
    assert err is not None
    assert any(isinstance(e, ValueError) for e in _chain_errors(err))


def test_custom_policy_subclass_can_accept_failures(driver):
    with workflow("custom_pass") as wf:

        @task
        def bad():
            raise ValueError("bad")

        @task
        def worse():
            raise ValueError("worse")

        @task
        def after():
            return "after"

        (bad | worse).with_execution(policy=PassAlwaysPolicy()) >> after

    out = driver.run(wf)
    assert out.error is None
    assert out.result == "after"


def test_custom_policy_subclass_error_fails_the_group(driver):
    with workflow("custom_fail") as wf:

        @task
        def first():
            return 1

        @task
        def second():
            raise ValueError("second")

        @task
        def after():
            return "after"

        (first | second).with_execution(policy=RequireFirstMemberFailedPolicy()) >> after

    out = driver.run(wf)
    assert isinstance(out.error, ParallelGroupError)
    assert "first member must fail" in str(out.error)
    assert "after" not in out.completed_tasks


def test_policy_receives_one_task_result_per_member():
    received = []

    class Recording(GroupExecutionPolicy):
        def on_group_finished(self, group_id, tasks, results, context):
            received.append((group_id, [t.task_id for t in tasks], dict(results)))

    with workflow("recording") as wf:

        @task
        def a():
            return 1

        @task
        def b():
            raise ValueError("b failed")

        (a | b).set_group_name("G").with_execution(policy=Recording())

    wf.execute()
    assert len(received) == 1
    gid, member_ids, results = received[0]
    assert gid == "G"
    assert member_ids == ["a", "b"]
    assert sorted(results) == ["a", "b"]
    assert all(isinstance(r, TaskResult) for r in results.values())
    assert results["a"].success is True
    assert results["b"].success is False
    assert "b failed" in (results["b"].error_message or str(results["b"].error))


def _members():
    return [
        TaskWrapper("m1", lambda: 1, register_to_context=False),
        TaskWrapper("m2", lambda: 2, register_to_context=False),
    ]


@pytest.mark.parametrize(
    "policy",
    [
        StrictGroupPolicy(),
        BestEffortGroupPolicy(),
        CriticalGroupPolicy(["m1"]),
        AtLeastNGroupPolicy(min_success=1),
    ],
    ids=["strict", "best_effort", "critical", "at_least_n"],
)
def test_every_policy_checks_result_keys_against_members(policy):
    results = {
        "m1": TaskResult(task_id="m1", success=True),
        "intruder": TaskResult(task_id="intruder", success=True),
    }
    with pytest.raises(ParallelGroupError) as info:
        policy.on_group_finished("G", _members(), results, create_execution_context())
    assert "result mismatch" in str(info.value)


def test_task_result_fields_and_defaults():
    r = TaskResult(task_id="x", success=True)
    assert (r.task_id, r.success, r.error, r.error_message, r.duration, r.timestamp) == (
        "x",
        True,
        None,
        None,
        0.0,
        0.0,
    )


def test_parallel_group_error_carries_its_fields():
    err = ParallelGroupError("boom", "G", [("m", "msg")], ["ok"])
    assert isinstance(err, GraflowRuntimeError)
    assert err.group_id == "G"
    assert err.failed_tasks == [("m", "msg")]
    assert err.successful_tasks == ["ok"]


@pytest.mark.parametrize(
    "policy",
    [
        StrictGroupPolicy(),
        BestEffortGroupPolicy(),
        CriticalGroupPolicy(["a", "b"]),
        AtLeastNGroupPolicy(min_success=2),
        PassAlwaysPolicy(),
    ],
)
def test_policies_are_picklable(policy):
    restored = pickle.loads(pickle.dumps(policy))
    assert type(restored) is type(policy)
    assert type(cloudpickle.loads(cloudpickle.dumps(policy))) is type(policy)


def test_member_context_is_a_task_execution_context_for_the_member(driver):
    with workflow("member_ctx") as wf:

        @task(inject_context=True)
        def a(ctx):
            ctx.get_channel().set("a", [isinstance(ctx, TaskExecutionContext), ctx.task_id])

        @task(inject_context=True)
        def b(ctx):
            ctx.get_channel().set("b", [isinstance(ctx, TaskExecutionContext), ctx.task_id])

        a | b

    out = driver.run(wf)
    assert out.channel.get("a") == [True, "a"]
    assert out.channel.get("b") == [True, "b"]
