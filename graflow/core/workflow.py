"""``workflow(name)``: the context in which tasks and operators build a graph."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from graflow.core import scope
from graflow.core.graph import TaskGraph
from graflow.core.scope import (
    clear_workflow_context,
    current_workflow_context,
    get_current_workflow_context,
    install_workflow_factory,
    operator_workflow,
    registration_target,
    require_workflow_context,
    set_current_workflow_context,
)
from graflow.exceptions import GraphCompilationError

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.executable import Executable
    from graflow.trace import Tracer


class WorkflowContext:
    """A named graph under construction; ``execute`` runs it in-process, ``submit`` on a pool."""

    def __init__(self, name: str = "workflow", tracer: Tracer | None = None) -> None:
        self.name = name
        self.graph = TaskGraph()
        self.tracer = tracer
        self._group_counter = 0
        self._tokens: list[contextvars.Token[WorkflowContext | None]] = []
        self._redis_client: Any = None

    def set_redis_client(self, client: Any) -> None:
        """Keep a Redis client with the workflow (upstream API; graflow's runs take theirs
        from ``execute(channel_backend="redis", config=...)`` or ``submit(redis_url)``)."""
        self._redis_client = client

    def get_redis_client(self) -> Any:
        return self._redis_client

    # -- context manager -----------------------------------------------------------
    def __enter__(self) -> WorkflowContext:
        self._tokens.append(scope.current.set(self))
        return self

    def __exit__(self, exc_type: object, exc_val: object, exc_tb: object) -> None:
        scope.current.reset(self._tokens.pop())

    # -- graph pass-throughs -------------------------------------------------------
    def add_node(self, name: str, task: Executable, skip_if_exists: bool = False) -> None:
        self.graph.add_node(task, name, skip_if_exists=skip_if_exists)

    def add_edge(self, from_node: str, to_node: str) -> None:
        self.graph.add_edge(from_node, to_node)

    def rename_node(self, old_task_id: str, new_task_id: str) -> None:
        self.graph.rename_node(old_task_id, new_task_id)

    def get_next_group_name(self) -> str:
        self._group_counter += 1
        name = f"ParallelGroup_{self._group_counter}"
        while name in self.graph:
            self._group_counter += 1
            name = f"ParallelGroup_{self._group_counter}"
        return name

    def clear(self) -> None:
        self.graph.clear()
        self._group_counter = 0

    def show_info(self) -> None:
        print(f"Workflow {self.name!r}: {len(self.graph)} nodes, {len(self.graph.edges)} edges")
        print(f"  start candidates: {self.graph.get_start_nodes()}")
        print(f"  nodes: {self.graph.nodes}")
        print(f"  edges: {self.graph.edges}")

    def visualize_dependencies(self) -> None:
        print(self.graph)

    # -- running -------------------------------------------------------------------
    def resolve_start_node(self, start_node: str | None) -> str:
        """``start_node`` if it exists, else the single start candidate."""
        return resolve_start_node(self.graph, start_node, self.name)

    def execute(
        self,
        start_node: str | None = None,
        max_steps: int = 10000,
        ret_context: bool = False,
        initial_channel: dict[str, Any] | None = None,
        *,
        channel_backend: str = "memory",
        config: dict[str, Any] | None = None,
        default_max_cycles: int = 10,
        default_max_retries: int = 0,
    ) -> Any:
        from graflow.core.context import ExecutionContext
        from graflow.core.engine import WorkflowEngine

        start = self.resolve_start_node(start_node)
        # Each run gets its own copy of the graph: tasks added during the run
        # (next_task) must not become static nodes of the next run.
        ctx = ExecutionContext.create(
            self.graph.copy(),
            start,
            max_steps=max_steps,
            default_max_cycles=default_max_cycles,
            default_max_retries=default_max_retries,
            channel_backend=channel_backend,
            config=config,
            tracer=self.tracer,
        )
        ctx.workflow_name = self.name
        if initial_channel:
            channel = ctx.channel
            for key, value in initial_channel.items():
                channel.set(key, value)
        result = WorkflowEngine().execute(ctx)
        return (result, ctx) if ret_context else result

    def submit(self, redis_url: str = "redis://localhost:6379/0", **kwargs: Any) -> Any:
        """Hand the run to a worker pool (see docs/life-of-a-task.md)."""
        from graflow.core import drivers

        return drivers.pool().submit(self, redis_url, **kwargs)

    def create_context(self, start_node: str | None = None, **kwargs: Any) -> ExecutionContext:
        from graflow.core.context import ExecutionContext

        return ExecutionContext.create(self.graph, self.resolve_start_node(start_node), **kwargs)

    def __repr__(self) -> str:
        return f"WorkflowContext({self.name!r}, nodes={len(self.graph)})"


def resolve_start_node(graph: TaskGraph, start_node: str | None, name: str = "workflow") -> str:
    """``start_node`` if the graph has it, else the graph's single start candidate."""
    if start_node is not None:
        if not graph.has_node(start_node):
            raise GraphCompilationError(
                f"workflow {name!r} has no task {start_node!r}; known tasks: {graph.nodes[:20]}"
            )
        return start_node
    candidates = graph.get_start_nodes()
    if not candidates:
        raise GraphCompilationError(
            f"workflow {name!r} has no start node (empty graph, or every task has a "
            "predecessor); pass start_node=..."
        )
    if len(candidates) > 1:
        raise GraphCompilationError(
            f"workflow {name!r} has several start candidates {candidates}; "
            "pass start_node=... or link them from one task"
        )
    return candidates[0]


def workflow(name: str, tracer: Tracer | None = None) -> WorkflowContext:
    """A new workflow; use it as ``with workflow("name") as wf:``."""
    return WorkflowContext(name, tracer)


install_workflow_factory(WorkflowContext)

__all__ = [
    "WorkflowContext",
    "clear_workflow_context",
    "current_workflow_context",
    "get_current_workflow_context",
    "operator_workflow",
    "registration_target",
    "require_workflow_context",
    "resolve_start_node",
    "set_current_workflow_context",
    "workflow",
]
