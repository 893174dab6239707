"""``Tracer``: the hooks the engine calls around a run, upstream graflow 0.2.0's interface.

Two ways to write a tracer, as upstream:

- override the ``on_*`` hooks (each receives the task object, not its id);
- or implement the ``_output_*`` methods: the default hooks drive the template methods
  (``trace_start``/``trace_end`` for the run, ``span_start``/``span_end`` for each task),
  which record the runtime graph and then call ``_output_*``.

Unlike upstream, nothing here is abstract (``_output_*`` and ``clone`` have defaults),
so a tracer that overrides a single hook can be instantiated. The runtime graph is a
``networkx.DiGraph`` recorded only when ``enable_runtime_graph`` is true *and*
networkx is installed; ``get_runtime_graph()`` returns ``None`` otherwise, while the
execution order is kept either way. See docs/execution.md#tracing.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING, Any

from graflow.trace.graph import export, new_graph

if TYPE_CHECKING:
    import networkx as nx

    from graflow.core.context import ExecutionContext
    from graflow.core.executable import Executable


class Tracer:
    """Observes a run: subclass it and override hooks, or implement the ``_output_*`` methods."""

    # Class-level defaults keep the base hooks harmless in a subclass that skips __init__.
    enable_runtime_graph: bool = False
    _runtime_graph: Any = None
    _current_trace_id: str | None = None

    def __init__(self, enable_runtime_graph: bool = True) -> None:
        self.enable_runtime_graph = enable_runtime_graph
        self._runtime_graph = new_graph() if enable_runtime_graph else None
        self._execution_order: list[str] = []
        self._current_trace_id = None
        self._span_stack: list[str] = []  # for subclasses that nest spans (upstream keeps it here)
        self._member_groups: dict[str, str] = {}  # parallel member id -> its group: the span parent

    # -- template methods: record, then call the subclass's output ------------------
    def trace_start(self, name: str, trace_id: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        """Open the run's trace (its root span)."""
        self._current_trace_id = trace_id
        if self.enable_runtime_graph:
            self._add_node_to_runtime_graph(
                name, status="running", metadata={"type": "trace", "trace_id": trace_id, **(metadata or {})}
            )
        self._output_trace_start(name, trace_id, metadata)

    def trace_end(self, name: str, output: Any | None = None, metadata: dict[str, Any] | None = None) -> None:
        """Close the run's trace."""
        if self.enable_runtime_graph:
            self._update_node_in_runtime_graph(
                name, status="completed", end_time=datetime.now(),
                metadata={"output": str(output) if output else None, **(metadata or {})},
            )  # fmt: skip
        self._output_trace_end(name, output, metadata)

    def span_start(self, name: str, parent_name: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        """Open a span (one task attempt), under ``parent_name`` when given."""
        if self.enable_runtime_graph:
            self._add_node_to_runtime_graph(name, status="running", metadata={"type": "span", **(metadata or {})})
            if parent_name:
                self._add_edge_to_runtime_graph(parent_name, name, relation="parent-child")
        self._output_span_start(name, parent_name, metadata)

    def span_end(self, name: str, output: Any | None = None, metadata: dict[str, Any] | None = None) -> None:
        """Close a span; ``metadata["error"]`` marks it failed."""
        status = "failed" if metadata and metadata.get("error") else "completed"
        if self.enable_runtime_graph:
            self._update_node_in_runtime_graph(
                name, status=status, end_time=datetime.now(),
                metadata={"output": str(output) if output else None, **(metadata or {})},
            )  # fmt: skip
        self._output_span_end(name, output, metadata)

    def event(self, name: str, parent_span: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        """A point-in-time observation (not recorded in the runtime graph)."""
        self._output_event(name, parent_span, metadata)

    def attach_to_trace(self, trace_id: str, parent_span_id: str | None = None) -> None:
        """Continue an existing trace (a run's trace seen from another process)."""
        self._current_trace_id = trace_id
        self._output_attach_to_trace(trace_id, parent_span_id)

    # -- output: what a concrete tracer emits (no-ops here; abstract upstream) ------
    def _output_trace_start(self, name: str, trace_id: str | None, metadata: dict[str, Any] | None) -> None:
        """Emit a trace start."""

    def _output_trace_end(self, name: str, output: Any | None, metadata: dict[str, Any] | None) -> None:
        """Emit a trace end."""

    def _output_span_start(self, name: str, parent_name: str | None, metadata: dict[str, Any] | None) -> None:
        """Emit a span start."""

    def _output_span_end(self, name: str, output: Any | None, metadata: dict[str, Any] | None) -> None:
        """Emit a span end."""

    def _output_event(self, name: str, parent_span: str | None, metadata: dict[str, Any] | None) -> None:
        """Emit an event."""

    def _output_attach_to_trace(self, trace_id: str, parent_span_id: str | None) -> None:
        """Emit an attach to an existing trace."""

    # -- the hooks the engine calls ---------------------------------------------------
    def on_workflow_start(self, workflow_name: str, context: ExecutionContext) -> None:
        """A run starts: open its trace."""
        self.trace_start(
            workflow_name,
            trace_id=context.trace_id,
            metadata={"start_node": context.start_node, "max_steps": context.max_steps, "session_id": context.session_id},
        )

    def on_workflow_end(self, workflow_name: str, context: ExecutionContext, result: Any | None = None) -> None:
        """A run ends (also when it raises: then ``result`` is None and ``context.stop_reason`` says why)."""
        self.trace_end(workflow_name, output=result, metadata={"steps": context.steps})

    def on_task_queued(self, task: Executable, context: ExecutionContext) -> None:
        """An activation of ``task`` was queued (successor, retry, ``next_task``)."""

    def on_task_start(self, task: Executable, context: ExecutionContext) -> None:
        """An attempt starts: open its span under the running task, or its parallel group."""
        parent = getattr(context, "current_task_id", None) or self.__dict__.get("_member_groups", {}).get(task.task_id)
        self.span_start(
            task.task_id,
            parent_name=parent,
            metadata={"task_type": type(task).__name__, "handler_type": getattr(task, "handler_type", "direct")},
        )

    def on_task_end(
        self,
        task: Executable,
        context: ExecutionContext,
        result: Any | None = None,
        error: Exception | None = None,
    ) -> None:
        """An attempt ended, with its result or the exception it raised: close its span."""
        metadata = {"error": str(error), "error_type": type(error).__name__} if error else {}
        self.span_end(task.task_id, output=result, metadata=metadata)

    def on_parallel_group_start(self, group_id: str, member_ids: list[str], context: ExecutionContext) -> None:
        """A parallel group starts its branches: the members' spans will hang under the group's."""
        groups = self.__dict__.get("_member_groups")
        if groups is not None:
            for member_id in member_ids:
                groups[member_id] = group_id
        graph = self._runtime_graph
        if self.enable_runtime_graph and graph is not None:
            for member_id in member_ids:
                if group_id in graph and member_id in graph:
                    self._add_edge_to_runtime_graph(group_id, member_id, relation="parallel-member")

    def on_parallel_group_end(
        self,
        group_id: str,
        member_ids: list[str],
        context: ExecutionContext,
        results: dict[str, Any] | None = None,
    ) -> None:
        """Every branch of the group finished; ``results`` maps member id to its ``TaskResult``."""

    def on_dynamic_task_added(
        self,
        task_id: str,
        parent_task_id: str | None = None,
        is_iteration: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """``next_task``/``next_iteration`` queued ``task_id``; metadata: task_type, is_new_task, goto."""

    # -- lifecycle ----------------------------------------------------------------------
    def clone(self, trace_id: str) -> Tracer:
        """A tracer for a branch: same configuration, own state, no runtime graph, attached to ``trace_id``."""
        twin = copy.copy(self)
        twin.enable_runtime_graph = False
        twin._runtime_graph = None
        twin._execution_order = []
        twin._span_stack = []
        twin._member_groups = {}
        twin._current_trace_id = trace_id
        return twin

    def flush(self) -> None:
        """Send buffered trace data now (a no-op here)."""

    def shutdown(self) -> None:
        """Flush and release resources (a no-op here)."""

    # -- reading what was recorded -------------------------------------------------------
    def get_runtime_graph(self) -> nx.DiGraph | None:
        """The runtime graph; None when disabled or when networkx is not installed."""
        return self._runtime_graph

    def get_execution_order(self) -> list[str]:
        """Trace and span names in the order they started (kept without networkx too)."""
        return list(self.__dict__.get("_execution_order", ()))

    def get_current_span_id(self) -> str | None:
        """The active span's id, for tracers that have one."""
        return None

    def export_runtime_graph(self, format: str = "dict") -> dict[str, Any] | None:
        """The runtime graph as ``dict``, ``json`` (JSON-safe dict) or ``graphml``; None without a graph."""
        if self._runtime_graph is None:
            return None
        return export(self._runtime_graph, self._execution_order, format)

    # -- recording helpers ---------------------------------------------------------------
    def _add_node_to_runtime_graph(
        self, node_id: str, status: str = "running", metadata: dict[str, Any] | None = None
    ) -> None:
        if self._runtime_graph is not None:
            self._runtime_graph.add_node(node_id, status=status, start_time=datetime.now(), metadata=metadata or {})
        self._execution_order.append(node_id)

    def _update_node_in_runtime_graph(
        self,
        node_id: str,
        status: str | None = None,
        end_time: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        graph = self._runtime_graph
        if graph is None or node_id not in graph:
            return
        data = graph.nodes[node_id]
        if status is not None:
            data["status"] = status
        if end_time is not None:
            data["end_time"] = end_time
        if metadata is not None:
            data["metadata"].update(metadata)

    def _add_edge_to_runtime_graph(self, parent_id: str, child_id: str, relation: str = "parent-child") -> None:
        graph = self._runtime_graph
        if graph is not None and parent_id in graph and child_id in graph:
            graph.add_edge(parent_id, child_id, relation=relation)


__all__ = ["Tracer"]
