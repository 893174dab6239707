"""Small pieces of upstream Graflow's API (audit item A11), each called as an upstream
program calls it. Where the behaviour was checked against upstream 0.2.0, the expected
values are upstream's."""

from __future__ import annotations

import inspect
import logging
import pickle
import time
from typing import Any

import pytest

from graflow import codec
from graflow.channels.factory import ChannelFactory
from graflow.channels.memory_channel import MemoryChannel
from graflow.channels.typed import ChannelTypeRegistry
from graflow.core.context import ExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.graph import TaskGraph
from graflow.core.handler import TaskHandler
from graflow.core.handlers.group_policy import (
    AtLeastNGroupPolicy,
    BestEffortGroupPolicy,
    CriticalGroupPolicy,
    GroupExecutionPolicy,
    StrictGroupPolicy,
    canonicalize_group_policy,
    resolve_group_policy,
)
from graflow.core.retry import RetryController, RetryPolicy
from graflow.core.workflow import set_current_workflow_context, workflow
from graflow.exceptions import (
    GraflowRuntimeError,
    GraflowWorkflowCanceledError,
    MaxStepsExceeded,
    RetryLimitExceededError,
    TaskError,
    as_runtime_error,
)
from graflow.queue.base import TaskSpec, TaskStatus
from graflow.queue.local import LocalTaskQueue


def _run(wf: Any, start: str) -> ExecutionContext:
    ctx = ExecutionContext.create(wf.graph, start)
    WorkflowEngine().execute(ctx)
    return ctx


# -- ExecutionContext: control flags and ctrl_message ---------------------------------


def test_ctrl_message_holds_the_terminate_or_cancel_message() -> None:
    with workflow("terminating") as wf:

        @task(inject_context=True)
        def first(ctx: Any) -> None:
            ctx.terminate_workflow("enough")
            ec = ctx.execution_context
            ctx.get_channel().set("seen", (ec.ctrl_message, ec.terminate_called))

        @task(inject_context=True)
        def second(ctx: Any) -> None:
            ctx.get_channel().set("second ran", True)

        first >> second

    ctx = _run(wf, "first")
    assert ctx.channel.get("seen") == ("enough", True)
    assert ctx.ctrl_message == "enough" and ctx.channel.get("second ran") is None

    with workflow("canceling") as wf:

        @task(inject_context=True)
        def bad(ctx: Any) -> None:
            ctx.cancel_workflow("invalid input")

    ctx = ExecutionContext.create(wf.graph, "bad")
    with pytest.raises(GraflowWorkflowCanceledError):
        WorkflowEngine().execute(ctx)
    assert ctx.ctrl_message == "invalid input"
    ctx.reset_control_flags()
    assert ctx.ctrl_message is None


def test_reset_flags_withdraw_terminate_cancel_and_goto(driver: Any) -> None:
    with workflow("resets") as wf:

        @task(inject_context=True)
        def first(ctx: Any) -> None:
            ec = ctx.execution_context
            ec.terminate_workflow("stop")
            ec.reset_terminate_flag()
            after_terminate = [ec.terminate_called, ec.ctrl_message]
            ec.cancel_workflow("abort")
            ec.reset_cancel_flag()
            after_cancel = [ec.cancel_called, ec.ctrl_message]
            ec.next_task(extra, goto=True)
            goto_before = ec.goto_called
            ec.reset_goto_flag()
            ctx.get_channel().set("flags", [after_terminate, after_cancel, goto_before, ec.goto_called])

        @task
        def extra() -> None:
            return None

        @task
        def second() -> None:
            return None

        first >> second

    out = driver.run(wf, "first")
    assert out.error is None and out.stop_reason != "terminate_workflow"
    assert out.channel.get("flags") == [[False, None], [False, None], True, False]
    # Nothing was withheld: the static successor ran as well as the goto target.
    assert sorted(out.completed_tasks) == ["extra", "first", "second"]


# -- RetryController and RetryLimitExceededError ----------------------------------------


def test_retry_controller_records_the_last_error() -> None:
    rc = RetryController(default_max_retries=1)
    boom = ValueError("boom")
    assert rc.increment("t", boom) == 1 and rc.increment("u") == 1
    assert rc.get_last_error("t") is boom and rc.last_errors == {"t": boom}
    assert rc.get_last_error("u") is None
    with pytest.raises(RetryLimitExceededError) as info:
        rc.check_retry_limit("t")
    assert info.value.last_error is boom and info.value.cause is boom
    # The engine records each retried attempt's error.
    attempts: list[int] = []

    with workflow("flaky") as wf:

        @task(retry_policy=RetryPolicy(max_retries=1, initial_interval=0.0))
        def flaky() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise KeyError("first try")
            return "ok"

    ctx = _run(wf, "flaky")
    assert isinstance(ctx.retry_controller.get_last_error("flaky"), KeyError)
    assert pickle.loads(pickle.dumps(ctx.retry_controller)).last_errors == {}  # diagnostics stay here


def test_retry_limit_exceeded_error_without_a_last_error() -> None:
    err = RetryLimitExceededError("t", 3, 2)
    assert err.last_error is None and err.cause is None and err.task_id == "t"
    assert (err.retry_count, err.max_retries) == (3, 2) and "None" not in str(err)


# -- group policies ---------------------------------------------------------------------


class _OnlyLogs(GroupExecutionPolicy):
    def on_group_finished(self, group_id: str, tasks: list[Any], results: dict[str, Any], context: Any) -> None:
        return None


def test_group_policy_names_and_their_plain_forms() -> None:
    cases: list[tuple[GroupExecutionPolicy, str, Any]] = [
        (StrictGroupPolicy(), "strict", "strict"),
        (BestEffortGroupPolicy(), "best_effort", "best_effort"),
        (CriticalGroupPolicy(["b", "a"]), "critical", {"type": "critical", "critical_task_ids": ["a", "b"]}),
        (AtLeastNGroupPolicy(2), "at_least_2", {"type": "at_least_n", "min_success": 2}),
    ]
    for policy, name, plain in cases:
        assert policy.get_name() == name
        assert canonicalize_group_policy(policy) == plain
        again = resolve_group_policy(plain)
        assert type(again) is type(policy) and canonicalize_group_policy(again) == plain
    custom = _OnlyLogs()
    assert custom.get_name() == "_OnlyLogs"
    assert canonicalize_group_policy(custom) == {"type": "__custom__", "policy": custom}
    assert resolve_group_policy(canonicalize_group_policy(custom)) is custom
    assert canonicalize_group_policy("best_effort") == "best_effort"
    assert isinstance(resolve_group_policy("STRICT"), StrictGroupPolicy)
    with pytest.raises(ValueError):
        resolve_group_policy("nonsense")
    with pytest.raises(TypeError):
        resolve_group_policy(42)  # type: ignore[arg-type]


# -- the queue's TaskSpec and LocalTaskQueue.retry_failed_task ---------------------------


def test_task_spec_retry_bookkeeping_and_retry_failed_task() -> None:
    with workflow("queue") as wf:

        @task
        def only() -> int:
            return 1

    ctx = ExecutionContext.create(wf.graph, "only")
    spec = TaskSpec(only, ctx, max_retries=2)
    assert spec.can_retry() and spec.get_task() is only
    spec.increment_retry("boom")
    assert (spec.retry_count, spec.last_error, spec.status, spec.can_retry()) == (1, "boom", TaskStatus.READY, True)
    spec.increment_retry()
    assert (spec.retry_count, spec.last_error, spec.can_retry()) == (2, None, False)

    queue = LocalTaskQueue(ctx)
    failed = TaskSpec(only, ctx, max_retries=1, status=TaskStatus.ERROR)
    assert queue.retry_failed_task(failed) is False and queue.size() == 0  # retry is opt-in
    queue.configure(enable_retry=True)
    assert queue.retry_failed_task(failed) is True
    assert queue.to_list() == ["only"] and failed.status == TaskStatus.READY
    failed.retry_count = 1
    assert queue.retry_failed_task(failed) is False and queue.size() == 1  # its budget is spent


# -- TaskError --------------------------------------------------------------------------


def test_task_error_takes_upstreams_argument_order_and_round_trips() -> None:
    err = TaskError("t1", "failed", ValueError("boom"))
    assert err.task_id == "t1" and isinstance(err.cause, ValueError)
    assert str(err) == "Error in task 't1': failed (caused by ValueError: boom)"
    assert str(TaskError("t1", "failed")) == "Error in task 't1': failed"
    assert isinstance(err, GraflowRuntimeError)
    kw = TaskError(message="by keyword", task_id="t2")
    assert kw.task_id == "t2" and str(kw) == "Error in task 't2': by keyword"
    for back in (pickle.loads(pickle.dumps(err)), codec.loads(codec.dumps(err))):
        assert type(back) is TaskError and back.task_id == "t1" and str(back) == str(err)
        assert isinstance(back.cause, ValueError) and back.cause.args == ("boom",)


# -- TaskWorker(tracer_config=...) ------------------------------------------------------


@pytest.mark.redis
def test_task_worker_accepts_and_ignores_a_tracer_config(
    redis_client: Any, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    from graflow.queue.distributed import RedisTaskQueue
    from graflow.worker.worker import TaskWorker

    queue = RedisTaskQueue(redis_client=redis_client, key_prefix=key_prefix)
    config = {"type": "langfuse", "enable_runtime_graph": False, "api_key": "sk-secret"}
    with caplog.at_level(logging.DEBUG, logger="graflow.worker"):
        worker = TaskWorker(queue, "w1", 2, 0.1, 30.0, config)
        by_name = TaskWorker(queue, "w2", tracer_config=config)
    assert worker.tracer_config == by_name.tracer_config == config
    assert worker.max_concurrent_tasks == 2 and not worker.is_running
    assert "langfuse" in caplog.text and "sk-secret" not in caplog.text


# -- MemoryChannel.ttl_data -------------------------------------------------------------


def test_memory_channel_ttl_data_maps_keys_to_wall_clock_expiry() -> None:
    channel = MemoryChannel("ttl")
    before = time.time()
    channel.set("short", 1, ttl=100)
    channel.set("plain", 2)
    expiry = channel.ttl_data
    assert list(expiry) == ["short"] and before + 99 < expiry["short"] <= time.time() + 100
    expiry["plain"] = 0.0  # a snapshot: writing to it changes nothing
    assert "plain" not in channel.ttl_data and channel.get("plain") == 2
    channel.set("short", 3)  # a set without ttl clears it, as upstream's
    assert channel.ttl_data == {}


# -- WorkflowEngine.execute_with_cycles -------------------------------------------------


class _Tagging(TaskHandler):
    def execute_task(self, task: Any, context: Any) -> Any:
        result = f"tagged:{task.run()}"
        context.set_result(task.task_id, result)
        return result


def test_engine_execute_with_cycles_runs_a_graph_on_this_engine() -> None:
    with workflow("cycles") as wf:

        @task(inject_context=True, handler="tagging")
        def loop(ctx: Any) -> int:
            channel = ctx.get_channel()
            n = channel.get("n", 0) + 1
            channel.set("n", n)
            if n < 3:
                ctx.next_iteration()
            return n

    engine = WorkflowEngine()
    engine.register_handler(handler_type="tagging", handler=_Tagging())
    assert engine.execute_with_cycles(wf.graph, "loop", max_steps=10) == "tagged:3"
    with pytest.warns(MaxStepsExceeded):  # a fresh context each call, with its step limit
        assert engine.execute_with_cycles(wf.graph, "loop", max_steps=2) == "tagged:2"


# -- ParallelGroup._execution_config ----------------------------------------------------


def test_parallel_group_execution_config_reads_like_upstreams() -> None:
    from graflow.coordination.coordinator import CoordinationBackend

    with workflow("groups"):

        @task
        def a() -> None:
            return None

        @task
        def b() -> None:
            return None

        group = a | b
        assert group._execution_config == {"backend": None, "backend_config": {}, "policy": "strict"}
        group.with_execution(backend=CoordinationBackend.THREADING, backend_config={"thread_count": 2})
        group.with_execution(backend_config={"timeout": 30}, policy=AtLeastNGroupPolicy(min_success=1))
        config = group._execution_config
        assert config["backend"] == CoordinationBackend.THREADING
        assert config["backend_config"] == {"thread_count": 2, "timeout": 30}
        assert config["policy"] == {"type": "at_least_n", "min_success": 1}
        config["backend_config"]["timeout"] = 1  # a copy: the group is unchanged
        assert group.backend_config["timeout"] == 30


# -- GraphStore defaults ----------------------------------------------------------------


@pytest.mark.redis
def test_graph_store_default_class_attributes(redis_client: Any, key_prefix: str) -> None:
    from graflow.coordination.graph_store import GraphStore
    from graflow.defaults import DEFAULT_GRAPH_TTL

    # Upstream: 86400 s and 100 graphs; here graphs are kept a week by default.
    assert GraphStore.DEFAULT_CACHE_SIZE == 100 and GraphStore.DEFAULT_TTL == DEFAULT_GRAPH_TTL
    store = GraphStore(redis_client, key_prefix)
    assert store.cache_size == GraphStore.DEFAULT_CACHE_SIZE


# -- RedisCoordinator.execute_group(execution_context=... or exec_context=...) -----------


def test_redis_coordinator_execute_group_takes_either_keyword() -> None:
    # A run on the pool with the keyword is in tests/distributed/test_upstream_path.py;
    # here, the argument checks that need no pool.
    from graflow.coordination.redis_coordinator import RedisCoordinator

    coordinator = RedisCoordinator(task_queue=None)
    ctx = ExecutionContext.create(TaskGraph(), None)
    with pytest.raises(TypeError, match="missing the run's context"):
        coordinator.execute_group("g", [], policy="strict")
    with pytest.raises(TypeError, match="name one argument"):
        coordinator.execute_group("g", [], ctx, exec_context=ExecutionContext.create(TaskGraph(), None))


# -- parameter names: upstream's keywords -----------------------------------------------


def test_upstreams_parameter_names_work_as_keywords(tmp_path: Any) -> None:
    with workflow("names") as wf:

        @task(id_or_func="named")
        def first() -> str:
            return "first"

        @task
        def second() -> str:
            return "second"

        wf.add_edge(from_node="named", to_node="second")
        wf.rename_node(old_task_id="second", new_task_id="last")
        graph = wf.graph
    graph.add_edge(from_node="named", to_node="last")
    assert graph.successors(node="named") == ["last"] and graph.predecessors(node="last") == ["named"]
    graph.rename_node(old_task_id="last", new_task_id="final")
    assert graph.successors("named") == ["final"]

    ctx = ExecutionContext.create(graph, "named")
    ctx.set_result(task_id="named", result=1)
    tc = ctx.create_task_context("named")
    ctx.push_task_context(task_ctx=tc)
    assert tc.get_result(node="named") == 1 and ctx.current_task_context is tc
    ctx.pop_task_context()

    path = tmp_path / "obj.bin"
    with open(path, "wb") as fh:
        codec.dump({"a": 1}, file=fh)
    with open(path, "rb") as fh:
        assert codec.load(file=fh) == {"a": 1}
    from graflow.core import serialization

    assert serialization.load is codec.load

    set_current_workflow_context(context=None)
    wrapped = as_runtime_error(ex=KeyError("k"))
    assert isinstance(wrapped.cause, KeyError)
    assert ChannelFactory.is_backend_available(backend="memory")
    typed = ChannelTypeRegistry.create_channel(channel=MemoryChannel("typed"), type_name="task_result")
    message = {"task_id": "t", "result": 1, "timestamp": 0.0, "status": "ok"}
    typed.set(key="k", value=message, ttl=None)
    assert typed.get("k") == message
    exit_names = list(inspect.signature(type(wf).__exit__).parameters)
    assert exit_names == ["self", "exc_type", "exc_val", "exc_tb"]
