"""``NoopTracer`` (upstream's default: no output, runtime graph kept) and ``SilentTracer``.

Upstream's contexts default to ``NoopTracer()``, which records the runtime graph on
every attempt. Ours default to ``SilentTracer``: the same class family, but every hook
is a plain no-op, so a run nobody traces pays one empty call per hook. Construct
``NoopTracer()`` yourself (and install networkx) to get upstream's recorded graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow.trace.base import Tracer

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.executable import Executable


class NoopTracer(Tracer):
    """Emits nothing; records the runtime graph and execution order unless told not to."""

    def __init__(self, enable_runtime_graph: bool = True) -> None:
        super().__init__(enable_runtime_graph=enable_runtime_graph)

    def clone(self, trace_id: str) -> NoopTracer:
        """A branch's tracer: a NoopTracer without a runtime graph (the parent keeps it)."""
        twin = NoopTracer(enable_runtime_graph=False)
        twin._current_trace_id = trace_id
        return twin


class SilentTracer(NoopTracer):
    """The tracer of a context given none: every hook does nothing and nothing is recorded."""

    def __init__(self) -> None:
        super().__init__(enable_runtime_graph=False)

    def on_workflow_start(self, workflow_name: str, context: ExecutionContext) -> None:
        """Nothing."""

    def on_workflow_end(self, workflow_name: str, context: ExecutionContext, result: Any | None = None) -> None:
        """Nothing."""

    def on_task_queued(self, task: Executable, context: ExecutionContext) -> None:
        """Nothing."""

    def on_task_start(self, task: Executable, context: ExecutionContext) -> None:
        """Nothing."""

    def on_task_end(
        self,
        task: Executable,
        context: ExecutionContext,
        result: Any | None = None,
        error: Exception | None = None,
    ) -> None:
        """Nothing."""

    def on_parallel_group_start(self, group_id: str, member_ids: list[str], context: ExecutionContext) -> None:
        """Nothing."""

    def on_parallel_group_end(
        self,
        group_id: str,
        member_ids: list[str],
        context: ExecutionContext,
        results: dict[str, Any] | None = None,
    ) -> None:
        """Nothing."""

    def on_dynamic_task_added(
        self,
        task_id: str,
        parent_task_id: str | None = None,
        is_iteration: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Nothing."""

    def clone(self, trace_id: str) -> SilentTracer:
        """Another silent tracer attached to ``trace_id``."""
        twin = SilentTracer()
        twin._current_trace_id = trace_id
        return twin


__all__ = ["NoopTracer", "SilentTracer"]
