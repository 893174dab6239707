"""`graflow.core.task`: Executable, TaskWrapper, Task, SequentialTask, ParallelGroup,
chain/parallel and the operator table."""

from __future__ import annotations

import os
import re
import threading

import cloudpickle
import pytest

from graflow import TaskExecutionContext, chain, parallel, task, workflow
from graflow.core.context import ExecutionContext, create_execution_context
from graflow.core.coordinator import CoordinationBackend
from graflow.core.handlers.group_policy import BestEffortGroupPolicy
from graflow.core.task import Executable, ParallelGroup, SequentialTask, Task, TaskWrapper
from graflow.core.workflow import get_current_workflow_context
from graflow.exceptions import DuplicateTaskError, GraflowRuntimeError


def mark(ctx, name):
    ctx.get_channel().append("order", name)


def idx(order, name):
    return order.index(name)


# --- Executable ------------------------------------------------------------------------


def test_get_execution_context_unset_raises_graflow_runtime_error():
    @task
    def f():
        return 1

    with pytest.raises(GraflowRuntimeError):
        f.get_execution_context()


def test_set_execution_context_binds_explicitly():
    @task
    def f():
        return 1

    ctx = create_execution_context()
    f.set_execution_context(ctx)
    assert f.get_execution_context() is ctx


def test_executable_default_handler_type_is_direct():
    assert Task("noop", register_to_context=False).handler_type == "direct"
    assert issubclass(TaskWrapper, Executable)
    assert issubclass(Task, Executable)
    assert issubclass(ParallelGroup, Executable)


def test_pickling_drops_the_bound_context():
    @task
    def f():
        return 1

    ctx = create_execution_context()
    f.set_execution_context(ctx)
    restored = cloudpickle.loads(cloudpickle.dumps(f))
    assert restored.task_id == "f"
    with pytest.raises(GraflowRuntimeError):
        restored.get_execution_context()


# --- TaskWrapper -----------------------------------------------------------------------


def test_taskwrapper_constructor_options_are_attributes():
    from graflow import RetryPolicy

    def fn(ctx):
        return 1

    policy = RetryPolicy(max_retries=2, initial_interval=0.01)
    t = TaskWrapper(
        "tw",
        fn,
        inject_context=True,
        register_to_context=False,
        handler_type="direct",
        resolve_keyword_args=False,
        max_cycles=3,
        max_retries=2,
        retry_policy=policy,
    )
    assert t.task_id == "tw"
    assert t.inject_context is True
    assert t.handler_type == "direct"
    assert t.resolve_keyword_args is False
    assert t.max_cycles == 3
    assert t.max_retries == 2
    assert t.retry_policy is policy


def test_taskwrapper_register_to_context_true_adds_node_in_active_workflow():
    with workflow("tw") as wf:
        TaskWrapper("registered", lambda: 1)
        TaskWrapper("unregistered", lambda: 1, register_to_context=False)
    assert wf.graph.has_node("registered")
    assert not wf.graph.has_node("unregistered")


def test_cloudpickled_closure_task_is_a_working_copy():
    k = 41

    @task
    def f():
        return k + 1

    restored = cloudpickle.loads(cloudpickle.dumps(f))
    assert restored is not f
    assert restored.task_id == "f"
    assert restored.run() == 42


def test_call_mode_instance_creation_with_task_id_and_bound_kwargs():
    @task
    def template(x: int) -> int:
        return x * 10

    with workflow("inst") as wf:
        inst = template(task_id="t1", x=3)
    assert isinstance(inst, TaskWrapper)
    assert inst is not template
    assert inst.task_id == "t1"
    assert wf.graph.has_node("t1")
    assert not wf.graph.has_node("template")
    assert inst.run() == 30


def test_call_mode_instance_creation_without_task_id_gets_hex_suffix():
    @task
    def template(x: int) -> int:
        return x

    with workflow("inst") as wf:
        inst = template(x=3)
    assert re.fullmatch(r"template_[0-9a-f]{8}", inst.task_id)
    assert wf.graph.has_node(inst.task_id)


def test_call_mode_instance_creation_rejects_positional_args():
    @task
    def template(x: int) -> int:
        return x

    with workflow("inst"), pytest.raises(TypeError):
        template(1, task_id="t1")


def test_call_mode_instance_creation_duplicate_id_raises():
    @task
    def template(x: int) -> int:
        return x

    with workflow("inst"):
        template(task_id="same", x=1)
        with pytest.raises(DuplicateTaskError):
            template(task_id="same", x=2)


def test_call_mode_direct_run_outside_workflow_returns_result():
    @task
    def seven(x: int = 7) -> int:
        return x

    assert seven() == 7


def test_call_mode_direct_run_inside_workflow_returns_result():
    with workflow("direct"):

        @task
        def seven() -> int:
            return 7

        assert seven() == 7


def test_call_mode_bound_resolves_from_channel():
    with workflow("bound") as wf:

        @task
        def f(x: int = 0) -> int:
            return x

    ctx = ExecutionContext.create(wf.graph, "f")
    ctx.channel.set("x", 5)
    with ctx.executing_task(f):
        assert f() == 5
        assert f.get_execution_context() is not None


def test_run_outside_a_run_uses_temporary_context_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    @task(inject_context=True)
    def g(ctx, x: int = 1):
        assert isinstance(ctx, TaskExecutionContext)
        ctx.get_channel().set("k", x)
        return ctx.get_channel().get("k")

    assert g.run() == 1
    assert g.run(x=3) == 3
    with pytest.raises(GraflowRuntimeError):
        g.get_execution_context()
    assert os.listdir(tmp_path) == []


def test_run_propagates_the_task_exception():
    @task
    def bad():
        raise KeyError("nope")

    with pytest.raises(KeyError):
        bad.run()


# --- Task ------------------------------------------------------------------------------


def test_task_is_a_noop_node_returning_none(driver):
    with workflow("noop") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")
            return "a"

        start = Task("start")
        start >> a

    assert start.task_id == "start"
    assert start.run() is None
    out = driver.run(wf)
    assert out.error is None
    assert out.completed_tasks == ["start", "a"]
    assert out.channel.get("start.__result__", "missing") is None
    assert out.result == "a"


def test_task_register_to_context_false_is_not_added():
    with workflow("noop") as wf:
        Task("hidden", register_to_context=False)
        Task("shown")
    assert not wf.graph.has_node("hidden")
    assert wf.graph.has_node("shown")


# --- SequentialTask --------------------------------------------------------------------


def test_sequential_task_shape():
    with workflow("seq") as wf:

        @task
        def a():
            return "a"

        @task
        def b():
            return "b"

        @task
        def c():
            return "c"

        seq = a >> b >> c
    assert isinstance(seq, SequentialTask)
    assert seq.task_id == "a"
    assert seq.leftmost is a
    assert seq.rightmost is c
    assert len(seq) == 3
    assert seq[0] is a
    assert seq[1] is b
    assert list(seq) == [a, b, c]
    assert sorted(wf.graph.nodes) == ["a", "b", "c"]  # not a graph node itself


def test_sequential_task_run_runs_leftmost_only():
    ran = []
    with workflow("seq"):

        @task
        def a():
            ran.append("a")
            return "a"

        @task
        def b():
            ran.append("b")
            return "b"

        seq = a >> b
    seq.run()
    assert ran == ["a"]


def test_sequential_task_empty_raises_value_error():
    with pytest.raises(ValueError):
        SequentialTask([])


# --- ParallelGroup ---------------------------------------------------------------------


def test_unnamed_groups_are_numbered_per_workflow_from_one():
    with workflow("g1") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def c():
            pass

        g1 = a | b
        g2 = ParallelGroup([b, c])
    assert g1.task_id == "ParallelGroup_1"
    assert g2.task_id == "ParallelGroup_2"
    assert wf.graph.has_node("ParallelGroup_1")
    with workflow("g2"):

        @task
        def x():
            pass

        @task
        def y():
            pass

        g3 = x | y
    assert g3.task_id == "ParallelGroup_1"


def test_named_group_and_members_are_not_linked_by_edges():
    with workflow("named") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        g = ParallelGroup([a, b], name="fan")
    assert g.task_id == "fan"
    assert g.tasks == [a, b]
    assert wf.graph.has_node("fan")
    assert list(wf.graph.successors("fan")) == []
    assert list(wf.graph.predecessors("a")) == []
    assert list(wf.graph.predecessors("b")) == []


def test_group_channel_result_is_none(driver):
    with workflow("group_result") as wf:

        @task
        def a():
            return "a"

        @task
        def b():
            return "b"

        g = (a | b).set_group_name("G")

    out = driver.run(wf)
    assert out.error is None
    assert g.task_id == "G"
    assert out.channel.get("G.__result__", "missing") is None
    assert out.channel.get("a.__result__") == "a"


def test_set_group_name_renames_and_keeps_edges():
    with workflow("rename") as wf:

        @task
        def s():
            pass

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def t():
            pass

        g = a | b
        s >> g >> t
        old = g.task_id
        assert g.set_group_name("fan") is g
    assert g.task_id == "fan"
    assert not wf.graph.has_node(old)
    assert list(wf.graph.successors("s")) == ["fan"]
    assert list(wf.graph.successors("fan")) == ["t"]


def test_set_group_name_existing_name_raises_value_error():
    with workflow("rename") as wf:

        @task
        def s():
            pass

        @task
        def a():
            pass

        @task
        def b():
            pass

        g = a | b
        with pytest.raises(ValueError):
            g.set_group_name("s")
    assert wf.graph.get_node("s") is s


def test_with_execution_returns_self_and_accepts_documented_values():
    with workflow("exec"):

        @task
        def a():
            pass

        @task
        def b():
            pass

        g = a | b
        assert g.with_execution(backend="threading") is g
        assert g.with_execution(backend="direct") is g
        assert g.with_execution(backend="redis") is g
        assert g.with_execution(backend="THREADING") is g  # case-insensitive
        assert g.with_execution(backend="Direct") is g
        assert g.with_execution(backend=CoordinationBackend.DIRECT) is g
        assert g.with_execution(backend_config={"thread_count": 2}) is g
        assert g.with_execution(policy="strict") is g
        assert g.with_execution(policy="best_effort") is g
        assert g.with_execution(policy=BestEffortGroupPolicy()) is g
        assert g.with_execution() is g


@pytest.mark.parametrize("backend", ["bogus", "multiprocessing", ""])
def test_with_execution_unknown_backend_raises_value_error(backend):
    with workflow("exec"):

        @task
        def a():
            pass

        @task
        def b():
            pass

        g = a | b
        with pytest.raises(ValueError):
            g.with_execution(backend=backend)


@pytest.mark.parametrize("policy", ["sometimes", 42, object()])
def test_with_execution_invalid_policy_raises_value_error(policy):
    with workflow("exec"):

        @task
        def a():
            pass

        @task
        def b():
            pass

        g = a | b
        with pytest.raises(ValueError):
            g.with_execution(policy=policy)


def test_threading_backend_runs_members_concurrently_on_other_threads():
    threads = []
    barrier = threading.Barrier(2, timeout=10)

    with workflow("threads") as wf:

        @task
        def a():
            threads.append(threading.get_ident())
            barrier.wait()  # only passes when both members run at the same time

        @task
        def b():
            threads.append(threading.get_ident())
            barrier.wait()

        (a | b).with_execution(backend="threading", backend_config={"thread_count": 2})

    wf.execute()
    main = threading.get_ident()
    assert len(threads) == 2
    assert threads[0] != threads[1]
    assert main not in threads


def test_threading_is_the_default_backend():
    # the default pool has os.cpu_count() threads
    barrier = threading.Barrier(min(2, os.cpu_count() or 1), timeout=10)
    with workflow("threads_default") as wf:

        @task
        def a():
            barrier.wait()
            return "a"

        @task
        def b():
            barrier.wait()
            return "b"

        a | b

    wf.execute()  # with a direct (sequential) default this would break the barrier
    assert not barrier.broken


def test_direct_backend_runs_members_one_after_another_in_calling_thread():
    seen = []
    with workflow("direct") as wf:

        @task
        def a():
            seen.append(("a", threading.get_ident()))

        @task
        def b():
            seen.append(("b", threading.get_ident()))

        @task
        def c():
            seen.append(("c", threading.get_ident()))

        parallel(a, b, c).with_execution(backend="direct")

    wf.execute()
    main = threading.get_ident()
    assert [name for name, _ in seen] == ["a", "b", "c"]
    assert all(ident == main for _, ident in seen)


# --- chain / parallel ------------------------------------------------------------------


def test_chain_folds_rshift():
    with workflow("chain") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def c():
            pass

        seq = chain(a, b, c)
    assert isinstance(seq, SequentialTask)
    assert list(seq) == [a, b, c]
    assert list(wf.graph.edges) == [("a", "b"), ("b", "c")]


def test_chain_single_task_is_wrapped():
    with workflow("chain") as wf:

        @task
        def a():
            pass

        seq = chain(a)
    assert isinstance(seq, SequentialTask)
    assert len(seq) == 1
    assert seq.leftmost is a
    assert list(wf.graph.edges) == []


def test_chain_without_tasks_raises_value_error():
    with pytest.raises(ValueError):
        chain()


def test_parallel_folds_or():
    with workflow("par") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def c():
            pass

        g = parallel(a, b, c)
    assert isinstance(g, ParallelGroup)
    assert g.tasks == [a, b, c]
    assert [n for n in wf.graph.nodes if isinstance(wf.graph.get_node(n), ParallelGroup)] == [
        g.task_id
    ]


def test_parallel_with_fewer_than_two_tasks_raises_value_error():
    @task
    def a():
        pass

    with pytest.raises(ValueError):
        parallel()
    with workflow("par"), pytest.raises(ValueError):
        parallel(a)


# --- operators -------------------------------------------------------------------------


def test_operator_outside_workflow_creates_and_sets_anonymous_workflow():
    @task
    def a():
        pass

    @task
    def b():
        pass

    assert get_current_workflow_context() is None
    a >> b
    wf = get_current_workflow_context()
    assert wf is not None
    assert ("a", "b") in list(wf.graph.edges)


def test_rshift_adds_edge_and_returns_chain():
    with workflow("ops") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        seq = a >> b
    assert isinstance(seq, SequentialTask)
    assert list(seq) == [a, b]
    assert list(wf.graph.edges) == [("a", "b")]


def test_rshift_into_chain_targets_its_leftmost():
    with workflow("ops") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def c():
            pass

        a >> (b >> c)
    assert sorted(wf.graph.edges) == [("a", "b"), ("b", "c")]


def test_chain_rshift_links_rightmost_and_extends_chain():
    with workflow("ops") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def c():
            pass

        seq = (a >> b) >> c
    assert isinstance(seq, SequentialTask)
    assert list(seq) == [a, b, c]
    assert seq.rightmost is c
    assert sorted(wf.graph.edges) == [("a", "b"), ("b", "c")]


def test_lshift_adds_reverse_edge():
    with workflow("ops") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        seq = a << b
    assert isinstance(seq, SequentialTask)
    assert list(seq) == [b, a]
    assert list(wf.graph.edges) == [("b", "a")]


def test_or_creates_group_node():
    with workflow("ops") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        g = a | b
    assert isinstance(g, ParallelGroup)
    assert g.tasks == [a, b]
    assert wf.graph.has_node(g.task_id)
    assert list(wf.graph.edges) == []


def test_or_with_chain_groups_its_leftmost_and_keeps_the_chain_edge():
    with workflow("ops") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def c():
            pass

        g = a | (b >> c)
    assert isinstance(g, ParallelGroup)
    assert g.tasks == [a, b]
    assert ("b", "c") in list(wf.graph.edges)
    assert list(wf.graph.successors(g.task_id)) == []


def test_or_with_chain_runs_chain_tail_in_branch_once(driver):
    with workflow("branch_chain") as wf:

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
        def d(ctx):
            mark(ctx, "d")

        g = a | (b >> c)
        s >> g >> d

    out = driver.run(wf)
    assert out.error is None
    order = out.channel.get("order")
    assert sorted(order) == ["a", "b", "c", "d", "s"]  # each exactly once
    assert idx(order, "s") < idx(order, "a")
    assert idx(order, "b") < idx(order, "c") < idx(order, "d")
    assert idx(order, "a") < idx(order, "d")
    gid = g.task_id
    assert out.completed_tasks.index("c") < out.completed_tasks.index(gid)


def test_group_or_task_appends_without_edge():
    with workflow("ops") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def x():
            pass

        g = a | b
        same = g | x
    assert same is g
    assert g.tasks == [a, b, x]
    assert list(wf.graph.edges) == []


def test_task_or_group_prepends_without_edge():
    with workflow("ops") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def x():
            pass

        g = a | b
        same = x | g
    assert same is g
    assert g.tasks == [x, a, b]
    assert list(wf.graph.edges) == []


def test_group_or_group_without_edges_merges_into_first():
    with workflow("ops") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def c():
            pass

        @task
        def d():
            pass

        g1 = a | b
        g2 = c | d
        g2_id = g2.task_id
        merged = g1 | g2
    assert merged is g1
    assert [t.task_id for t in merged.tasks] == ["a", "b", "c", "d"]
    assert not wf.graph.has_node(g2_id)


def test_group_or_group_with_edges_nests(driver):
    with workflow("nest") as wf:

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

        @task(inject_context=True)
        def e(ctx):
            mark(ctx, "e")

        g1 = a | b
        g2 = c | d
        g1 >> e
        outer = g1 | g2

    assert isinstance(outer, ParallelGroup)
    assert outer is not g1 and outer is not g2
    assert outer.tasks == [g1, g2]
    assert wf.graph.has_node(g1.task_id) and wf.graph.has_node(g2.task_id)
    out = driver.run(wf, outer.task_id)
    assert out.error is None
    order = out.channel.get("order")
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    assert idx(order, "a") < idx(order, "e") and idx(order, "b") < idx(order, "e")
    assert out.completed_tasks[-1] == outer.task_id


def test_group_rshift_and_rshift_group_put_edges_on_group_node():
    with workflow("ops") as wf:

        @task
        def s():
            pass

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def t():
            pass

        g = a | b
        left = s >> g
        right = g >> t
    assert isinstance(left, SequentialTask)
    assert isinstance(right, SequentialTask)
    assert sorted(wf.graph.edges) == sorted([("s", g.task_id), (g.task_id, "t")])


@pytest.mark.parametrize(
    ("bad", "type_name"), [(5, "int"), ("b", "str"), (None, "NoneType"), (lambda: 1, "function")]
)
def test_rshift_with_non_executable_raises_clear_type_error(bad, type_name):
    with workflow("bad_ops") as wf:

        @task
        def a():
            pass

        with pytest.raises(TypeError) as info:
            a >> bad
        with pytest.raises(TypeError):
            bad >> a
    message = str(info.value)
    assert ">>" in message
    assert type_name in message  # names what was given
    assert list(wf.graph.edges) == []


def test_rshift_with_plain_function_names_the_problem():
    def plain():
        return 1

    with workflow("bad_ops"):

        @task
        def a():
            pass

        with pytest.raises(TypeError) as info:
            a >> plain
    assert "function" in str(info.value) or "plain" in str(info.value)


@pytest.mark.parametrize("bad", [5, "b"])
def test_or_and_lshift_with_non_executable_raise_type_error(bad):
    with workflow("bad_ops"):

        @task
        def a():
            pass

        with pytest.raises(TypeError):
            a | bad
        with pytest.raises(TypeError):
            a << bad
