"""Upstream's text reports on a graph (``show_graph_info``, ``visualize_dependencies``)
and ``build_graph``.

The reports print what upstream prints, for a ``TaskGraph``, a workflow or an
``nx.DiGraph``. Cycles of an ``nx.DiGraph`` are networkx's ``simple_cycles``; those of a
``TaskGraph`` are found here, so networkx stays optional.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from graflow.core.graph import TaskGraph
from graflow.core.graph_view import GraphView, as_view, is_networkx
from graflow.core.group import ParallelGroup
from graflow.core.scope import current_workflow_context

if TYPE_CHECKING:
    from graflow.core.executable import Executable
    from graflow.core.workflow import WorkflowContext

logger = logging.getLogger("graflow.graph")


def visualize_dependencies(graph: Any) -> None:
    """Print each node and its successors (``a >> b >> c`` lists both of ``a``'s successors)."""
    view = as_view(graph)
    print("=== Dependencies ===")
    for node in view.nodes:
        successors = view.successors(node)
        if successors:
            print(f"{node} >> {' >> '.join(str(s) for s in successors)}")
        else:
            print(f"{node} (no dependencies)")


def show_graph_info(graph: Any) -> None:
    """Print the nodes, the edges and the cycles."""
    view = as_view(graph)
    print("=== Graph Information ===")
    print(f"Nodes: {view.nodes}")
    print(f"Edges: {view.edges}")
    try:
        cycles = _nx_cycles(graph) if is_networkx(graph) else simple_cycles(view)
    except Exception as exc:  # a report must not fail the program that prints it
        logger.error("Error detecting cycles in graph", exc_info=True)
        print(f"Error detecting cycles: {exc}")
        return
    print(f"Cycles detected: {cycles}" if cycles else "No cycles detected")


def _nx_cycles(graph: Any) -> list[list[Any]]:
    import networkx as nx

    return [list(c) for c in nx.simple_cycles(graph)]


def simple_cycles(view: GraphView) -> list[list[Any]]:
    """Every elementary cycle once, starting at its earliest node (in node order)."""
    order = {n: i for i, n in enumerate(view.nodes)}
    cycles: list[list[Any]] = []
    for start in view.nodes:
        rank = order[start]
        path = [start]
        on_path = {start}
        stack = [iter(view.successors(start))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                on_path.discard(path.pop())
            elif nxt == start:
                cycles.append(list(path))
            elif order[nxt] > rank and nxt not in on_path:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(view.successors(nxt)))
    return cycles


def build_graph(start_node: Executable, context: WorkflowContext | None = None) -> TaskGraph:
    """A new ``TaskGraph`` of what is connected to ``start_node`` in the workflow's graph
    (its successors and predecessors, and group members), for drawing part of a workflow.

    Upstream rewrites the workflow's own graph in place and adds group-to-member edges;
    here the workflow is left alone and members stay members, as everywhere in graflow."""
    source = (context or current_workflow_context()).graph
    graph = TaskGraph()
    todo: list[Executable] = [start_node]
    seen: set[str] = set()
    edges: list[tuple[str, str]] = []
    while todo:
        node = todo.pop()
        if node.task_id in seen:
            continue
        seen.add(node.task_id)
        graph.add_node(node, skip_if_exists=True)
        if isinstance(node, ParallelGroup):
            todo.extend(reversed(node.tasks))
        if node.task_id in source:
            for succ in source.successors(node.task_id):
                edges.append((node.task_id, succ))
                todo.append(source.get_node(succ))
            for pred in source.predecessors(node.task_id):
                edges.append((pred, node.task_id))
                todo.append(source.get_node(pred))
    for u, v in edges:
        if not graph.has_edge(u, v):
            graph.add_edge(u, v)
    return graph


__all__ = ["build_graph", "show_graph_info", "simple_cycles", "visualize_dependencies"]
