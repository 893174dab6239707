"""Tracers written for upstream graflow 0.2.0 (graflow/trace/base.py there) run unchanged.

The hooks receive task objects and take ``result=``/``error=``/``metadata=`` as upstream's
engine passes them (the recorder below makes those parameters keyword-only, so a
positional call would not reach it). The expected sequences were checked against
upstream's engine running the same workflows; where ours differs on purpose the test
says so (docs/execution.md#tracing lists the differences).
In-process only: a run submitted to the pool does not carry its tracer.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from graflow import task, workflow
from graflow.core.context import ExecutionContext
from graflow.core.executable import Executable
from graflow.core.task import TaskWrapper
from graflow.exceptions import ConfigError, GraflowRuntimeError
from graflow.trace import NoopTracer, SilentTracer, Tracer

Call = tuple[Any, ...]


def short(task_id: str | None) -> str | None:
    """Iteration ids end in a random suffix: keep the base."""
    return task_id.split("_cycle_")[0] + "_cycle" if task_id and "_cycle_" in task_id else task_id


class Recorder(Tracer):
    """An upstream-style tracer: overrides the hooks and reads ``task.task_id``."""

    def __init__(self) -> None:
        super().__init__(enable_runtime_graph=False)
        self.calls: list[Call] = []
        self.stop_reasons: list[str | None] = []

    def on_workflow_start(self, workflow_name: str, context: ExecutionContext) -> None:
        self.calls.append(("workflow_start", workflow_name))

    def on_workflow_end(  # type: ignore[override]
        self, workflow_name: str, context: ExecutionContext, *, result: Any = None
    ) -> None:
        self.stop_reasons.append(context.stop_reason)
        self.calls.append(("workflow_end", result))

    def on_task_queued(self, task: Executable, context: ExecutionContext) -> None:
        self.calls.append(("queued", short(task.task_id)))

    def on_task_start(self, task: Executable, context: ExecutionContext) -> None:
        self.calls.append(("start", short(task.task_id), short(context.current_task_id)))

    def on_task_end(  # type: ignore[override]
        self, task: Executable, context: ExecutionContext, *, result: Any = None, error: Exception | None = None
    ) -> None:
        self.calls.append(("end", short(task.task_id), result, type(error).__name__ if error else None))

    def on_parallel_group_start(self, group_id: str, member_ids: list[str], context: ExecutionContext) -> None:
        self.calls.append(("group_start", group_id, member_ids))

    def on_parallel_group_end(  # type: ignore[override]
        self, group_id: str, member_ids: list[str], context: ExecutionContext, *, results: Any = None
    ) -> None:
        self.calls.append(("group_end", group_id, sorted(results or {})))

    def on_dynamic_task_added(  # type: ignore[override]
        self, *, task_id: str, parent_task_id: str | None = None, is_iteration: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.calls.append(("dynamic", short(task_id), short(parent_task_id), is_iteration, metadata))


class Output(Tracer):
    """An upstream-style tracer that implements only the ``_output_*`` methods."""

    def __init__(self) -> None:
        super().__init__(enable_runtime_graph=False)
        self.calls: list[Call] = []

    def _output_trace_start(self, name: str, trace_id: str | None, metadata: dict[str, Any] | None) -> None:
        self.calls.append(("trace_start", name, trace_id, sorted(metadata or {})))

    def _output_trace_end(self, name: str, output: Any, metadata: dict[str, Any] | None) -> None:
        self.calls.append(("trace_end", name, output, metadata))

    def _output_span_start(self, name: str, parent_name: str | None, metadata: dict[str, Any] | None) -> None:
        self.calls.append(("span_start", name, parent_name, metadata))

    def _output_span_end(self, name: str, output: Any, metadata: dict[str, Any] | None) -> None:
        self.calls.append(("span_end", name, output, metadata))


def returning(value: Any) -> Any:
    def body() -> Any:
        if isinstance(value, Exception):
            raise value
        return value

    return body


def tasks(**returns: Any) -> list[TaskWrapper]:
    """One task per keyword, returning its value (raising it, for an exception)."""
    return [TaskWrapper(name, returning(value)) for name, value in returns.items()]


def chain(tracer: Tracer | None) -> Any:
    with workflow("chain", tracer=tracer) as wf:
        a, b, c = tasks(a=1, b=2, c=3)
        a >> b >> c
    return wf


def test_the_three_import_paths_name_the_same_classes() -> None:
    from graflow.trace.base import Tracer as BaseTracer
    from graflow.trace.noop import NoopTracer as NoopFromModule

    assert BaseTracer is Tracer
    assert NoopFromModule is NoopTracer
    assert issubclass(NoopTracer, Tracer)
    assert NoopTracer(enable_runtime_graph=False).get_runtime_graph() is None


def test_a_chain_calls_the_hooks_with_task_objects_in_upstream_order() -> None:
    tracer = Recorder()
    assert chain(tracer).execute() == 3
    # on_task_start runs before the task context is pushed, on_task_end before it is
    # popped (upstream's order): current_task_id is None, then the task itself.
    assert tracer.calls == [
        ("workflow_start", "chain"),
        ("start", "a", None), ("end", "a", 1, None),
        ("queued", "b"), ("start", "b", None), ("end", "b", 2, None),
        ("queued", "c"), ("start", "c", None), ("end", "c", 3, None),
        ("workflow_end", 3),
    ]  # fmt: skip
    assert tracer.stop_reasons == ["drained"]


def test_a_parallel_group_is_a_span_around_its_members_and_calls_the_group_hooks() -> None:
    tracer = Recorder()
    with workflow("group", tracer=tracer) as wf:
        a, b, c, d = tasks(a=1, b=2, c=3, d=4)
        a >> (b | c).set_group_name("g").with_execution(backend="direct") >> d

    assert wf.execute("a") == 4
    # Upstream's members see current_task_id "g" at start (they run under the group's task
    # context); ours run in branches with none. Their spans hang under "g" either way (below).
    assert tracer.calls == [
        ("workflow_start", "group"),
        ("start", "a", None), ("end", "a", 1, None),
        ("queued", "g"), ("start", "g", None),
        ("group_start", "g", ["b", "c"]),
        ("start", "b", None), ("end", "b", 2, None),
        ("start", "c", None), ("end", "c", 3, None),
        ("group_end", "g", ["b", "c"]),
        ("end", "g", None, None),
        ("queued", "d"), ("start", "d", None), ("end", "d", 4, None),
        ("workflow_end", 4),
    ]  # fmt: skip


def test_threaded_members_report_to_the_same_tracer_and_hang_under_the_group_span() -> None:
    tracer = Output()
    with workflow("threads", tracer=tracer) as wf:
        a, b, c = tasks(a=1, b=2, c=3)
        a >> (b | c).set_group_name("g")

    wf.execute("a")
    starts = {call[1]: call[2] for call in tracer.calls if call[0] == "span_start"}
    assert starts == {"a": None, "g": None, "b": "g", "c": "g"}
    names = [call[1] for call in tracer.calls if call[0] in ("span_start", "span_end")]
    assert names[:3] == ["a", "a", "g"] and names[-1] == "g"


def test_next_task_queues_then_reports_a_dynamic_task() -> None:
    tracer = Recorder()
    with workflow("dynamic", tracer=tracer) as wf:

        @task(inject_context=True)
        def a(ctx: Any) -> int:
            ctx.next_task(TaskWrapper("extra", returning("x"), register_to_context=False))
            return 1

        a >> tasks(b=2)[0]

    assert wf.execute("a") == 2
    assert tracer.calls == [
        ("workflow_start", "dynamic"),
        ("start", "a", None),
        ("queued", "extra"),
        ("dynamic", "extra", "a", False, {"task_type": "TaskWrapper", "is_new_task": True, "goto": False}),
        ("end", "a", 1, None),
        ("queued", "b"),
        ("start", "extra", None), ("end", "extra", "x", None),
        ("start", "b", None), ("end", "b", 2, None),
        ("workflow_end", 2),
    ]  # fmt: skip


def test_next_iteration_reports_each_iteration_with_is_iteration() -> None:
    tracer = Recorder()
    with workflow("loop", tracer=tracer) as wf:

        @task(inject_context=True)
        def loop(ctx: Any, n: int = 0) -> int:
            if n < 2:
                ctx.next_iteration(n + 1)
            return n

    assert wf.execute() == 2
    # Upstream says is_new_task=False for an iteration (its TaskWrapper registers itself
    # before the check); an iteration is a new task, and ours says so.
    added = {"task_type": "TaskWrapper", "is_new_task": True, "goto": False}
    assert tracer.calls == [
        ("workflow_start", "loop"),
        ("start", "loop", None),
        ("queued", "loop_cycle"), ("dynamic", "loop_cycle", "loop", True, added),
        ("end", "loop", 0, None),
        ("start", "loop_cycle", None),
        ("queued", "loop_cycle"), ("dynamic", "loop_cycle", "loop_cycle", True, added),
        ("end", "loop_cycle", 1, None),
        ("start", "loop_cycle", None), ("end", "loop_cycle", 2, None),
        ("workflow_end", 2),
    ]  # fmt: skip


def test_a_failing_task_ends_with_error_and_the_run_still_closes_its_trace() -> None:
    errors: list[Exception | None] = []

    class Keeper(Recorder):
        def on_task_end(  # type: ignore[override]
            self, task: Executable, context: ExecutionContext, *, result: Any = None, error: Exception | None = None
        ) -> None:
            errors.append(error)
            super().on_task_end(task, context, result=result, error=error)

    tracer = Keeper()
    with workflow("failing", tracer=tracer) as wf:
        a, b = tasks(a=1, b=ValueError("boom"))
        a >> b

    with pytest.raises(GraflowRuntimeError, match="boom"):
        wf.execute()
    assert tracer.calls == [
        ("workflow_start", "failing"),
        ("start", "a", None), ("end", "a", 1, None),
        ("queued", "b"), ("start", "b", None), ("end", "b", None, "ValueError"),
        ("workflow_end", None),  # upstream calls no hook when the run raises
    ]  # fmt: skip
    assert str(errors[-1]) == "boom"
    assert tracer.stop_reasons == ["task_failed"]


def test_a_tracer_implementing_only_output_methods_sees_the_trace_and_its_spans() -> None:
    tracer = Output()
    wf = chain(tracer)
    result, ctx = wf.execute(ret_context=True)
    assert tracer.calls == [
        ("trace_start", "chain", ctx.trace_id, ["max_steps", "session_id", "start_node"]),
        ("span_start", "a", None, {"task_type": "TaskWrapper", "handler_type": "direct"}),
        ("span_end", "a", 1, {}),
        ("span_start", "b", None, {"task_type": "TaskWrapper", "handler_type": "direct"}),
        ("span_end", "b", 2, {}),
        ("span_start", "c", None, {"task_type": "TaskWrapper", "handler_type": "direct"}),
        ("span_end", "c", 3, {}),
        ("trace_end", "chain", result, {"steps": 3}),
    ]
    assert tracer._current_trace_id == ctx.trace_id


def test_a_failed_span_carries_the_error_in_its_metadata() -> None:
    tracer = Output()
    with workflow("span_error", tracer=tracer) as wf:
        tasks(bad=KeyError("k"))

    with pytest.raises(GraflowRuntimeError):
        wf.execute()
    assert ("span_end", "bad", None, {"error": "'k'", "error_type": "KeyError"}) in tracer.calls


def test_a_raising_tracer_does_not_fail_the_run_and_is_logged_once_per_hook(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Tracer):
        def on_task_start(self, task: Executable, context: ExecutionContext) -> None:
            raise RuntimeError(f"cannot trace {task.task_id}")

        def on_workflow_end(self, workflow_name: str, context: ExecutionContext, result: Any = None) -> None:
            raise RuntimeError("cannot close")

    with caplog.at_level(logging.DEBUG, logger="graflow.trace"):
        assert chain(Broken()).execute() == 3
        assert chain(Broken()).execute() == 3
    warnings = [r for r in caplog.records if r.name == "graflow.trace" and r.levelno == logging.WARNING]
    assert sorted(r.getMessage().split(" raised")[0] for r in warnings) == [
        f"tracer hook {__name__}.{Broken.__qualname__}.on_task_start",
        f"tracer hook {__name__}.{Broken.__qualname__}.on_workflow_end",
    ]
    start = next(r for r in warnings if ".on_task_start" in r.getMessage())
    assert "cannot trace a" in start.getMessage()
    assert start.exc_info is not None and isinstance(start.exc_info[1], RuntimeError)
    later = [r for r in caplog.records if r.name == "graflow.trace" and r.levelno == logging.DEBUG]
    assert len(later) == 6  # run 1: two more task starts; run 2: three task starts and the workflow end


def test_a_tracer_raising_on_a_failed_task_leaves_the_task_error_to_the_run() -> None:
    class BrokenEnd(Tracer):
        def on_task_end(
            self, task: Executable, context: ExecutionContext, result: Any = None, error: Exception | None = None
        ) -> None:
            raise RuntimeError("tracer bug")

    with workflow("both_fail", tracer=BrokenEnd()) as wf:
        tasks(bad=ValueError("task bug"))

    with pytest.raises(GraflowRuntimeError, match="task bug"):
        wf.execute()


def test_the_implicit_tracer_records_nothing() -> None:
    assert chain(None).execute() == 3
    _, ctx = chain(None).execute(ret_context=True)
    assert isinstance(ctx.tracer, SilentTracer) and isinstance(ctx.tracer, NoopTracer)
    assert ctx.tracer.get_runtime_graph() is None
    assert ctx.tracer.get_execution_order() == []


def test_noop_tracer_records_the_runtime_graph_like_upstream() -> None:
    pytest.importorskip("networkx")
    tracer = NoopTracer()
    chain(tracer).execute()
    assert tracer.get_execution_order() == ["chain", "a", "b", "c"]
    graph = tracer.get_runtime_graph()
    assert graph is not None and set(graph.nodes) == {"chain", "a", "b", "c"}
    exported = tracer.export_runtime_graph()
    assert exported is not None
    assert {n["id"]: n["status"] for n in exported["nodes"]} == dict.fromkeys(["chain", "a", "b", "c"], "completed")
    assert tracer.export_runtime_graph("json") is not None
    assert "graphml" in (tracer.export_runtime_graph("graphml") or {})
    with pytest.raises(ConfigError, match="graphml"):
        tracer.export_runtime_graph("yaml")


def test_without_networkx_the_graph_is_none_and_the_order_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "networkx", None)  # what ``import networkx`` sees when it is absent
    tracer = NoopTracer()
    chain(tracer).execute()
    assert tracer.get_runtime_graph() is None
    assert tracer.export_runtime_graph() is None
    assert tracer.get_execution_order() == ["chain", "a", "b", "c"]


def test_lifecycle_methods_exist_and_clone_isolates_state() -> None:
    tracer = Recorder()
    tracer.attach_to_trace("0" * 32, parent_span_id="p")
    tracer.flush()
    tracer.shutdown()
    assert tracer.get_current_span_id() is None
    twin = tracer.clone("1" * 32)
    assert type(twin) is Recorder and twin is not tracer
    assert twin._current_trace_id == "1" * 32 and tracer._current_trace_id == "0" * 32
    assert twin.get_runtime_graph() is None
    noop_twin = NoopTracer().clone("2" * 32)
    assert type(noop_twin) is NoopTracer and noop_twin.get_runtime_graph() is None


def test_a_group_failed_by_its_policy_ends_its_span_with_the_error() -> None:
    tracer = Recorder()
    with workflow("group_fails", tracer=tracer) as wf:
        ok, bad = tasks(ok=1, bad=ValueError("member"))
        (ok | bad).set_group_name("g").with_execution(backend="direct")

    with pytest.raises(GraflowRuntimeError):
        wf.execute("g")
    assert ("end", "bad", None, "ValueError") in tracer.calls
    assert tracer.calls[-2:] == [("end", "g", None, "ParallelGroupError"), ("workflow_end", None)]


def test_a_hook_only_tracer_that_skips_init_runs_without_complaint(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    class Bare(Tracer):
        def __init__(self) -> None:  # no super().__init__(): the base hooks must still cope
            pass

        def on_task_start(self, task: Executable, context: ExecutionContext) -> None:
            seen.append(task.task_id)

    with caplog.at_level(logging.DEBUG, logger="graflow.trace"):
        assert chain(Bare()).execute() == 3
    assert seen == ["a", "b", "c"]
    assert not [r for r in caplog.records if r.name == "graflow.trace"]
