"""What the graph drawings read: one neutral view of a ``TaskGraph`` or an ``nx.DiGraph``.

Upstream's drawing functions take an ``nx.DiGraph`` whose nodes carry their executable
under ``"task"``; ours take a ``TaskGraph`` (networkx is optional). Both, and anything
holding a ``TaskGraph`` in ``.graph`` (a ``WorkflowContext``, an ``ExecutionContext``),
become a ``GraphView``: nodes in order with their task, edges in networkx's order
(by source node, then insertion) with an optional ``"label"``. The drawings are then
written once, against this view.
"""

from __future__ import annotations

import sys
from typing import Any

from graflow.core.group import ParallelGroup


class GraphView:
    """A small mutable digraph: ordered nodes (id -> task or None) and labelled edges."""

    def __init__(self) -> None:
        self.tasks: dict[Any, Any] = {}
        self._succ: dict[Any, dict[Any, str | None]] = {}
        self._pred: dict[Any, dict[Any, None]] = {}

    def add_node(self, node: Any, task: Any = None) -> None:
        if node not in self.tasks:
            self._succ[node] = {}
            self._pred[node] = {}
            self.tasks[node] = task
        elif task is not None:
            self.tasks[node] = task

    def add_edge(self, u: Any, v: Any, label: str | None = None) -> None:
        self.add_node(u)
        self.add_node(v)
        self._succ[u][v] = label
        self._pred[v][u] = None

    def remove_edge(self, u: Any, v: Any) -> None:
        del self._succ[u][v]
        del self._pred[v][u]

    @property
    def nodes(self) -> list[Any]:
        return list(self.tasks)

    @property
    def edges(self) -> list[tuple[Any, Any]]:
        return [(u, v) for u, vs in self._succ.items() for v in vs]

    def label(self, u: Any, v: Any) -> str | None:
        return self._succ[u][v]

    def successors(self, node: Any) -> list[Any]:
        return list(self._succ.get(node, ()))

    def predecessors(self, node: Any) -> list[Any]:
        return list(self._pred.get(node, ()))

    def __contains__(self, node: object) -> bool:
        return node in self.tasks

    def __len__(self) -> int:
        return len(self.tasks)

    def copy(self) -> GraphView:
        other = GraphView()
        other.tasks = dict(self.tasks)
        other._succ = {k: dict(v) for k, v in self._succ.items()}
        other._pred = {k: dict(v) for k, v in self._pred.items()}
        return other

    def groups(self) -> dict[Any, ParallelGroup]:
        """The group nodes and their ``ParallelGroup``."""
        return {n: t for n, t in self.tasks.items() if isinstance(t, ParallelGroup)}

    def members(self) -> set[str]:
        """Ids of every group member, at any depth."""
        found: set[str] = set()
        stack = list(self.groups().values())
        while stack:
            for member in stack.pop().tasks:
                if member.task_id not in found:
                    found.add(member.task_id)
                    if isinstance(member, ParallelGroup):
                        stack.append(member)
        return found


def is_networkx(graph: Any) -> bool:
    nx = sys.modules.get("networkx")  # an nx graph exists only once networkx is imported
    return nx is not None and isinstance(graph, nx.DiGraph)


def is_task_graph(graph: Any) -> bool:
    """A ``TaskGraph`` (checked by its interface: graph.py imports the drawings)."""
    return callable(getattr(graph, "out_edges", None)) and callable(getattr(graph, "task", None))


def as_view(graph: Any) -> GraphView:
    """A view of a ``TaskGraph``, of an ``nx.DiGraph``, or of what holds a ``TaskGraph`` in ``.graph``."""
    view = GraphView()
    if is_networkx(graph):
        for node, data in graph.nodes(data=True):
            view.add_node(node, data.get("task"))
        for u, v, data in graph.edges(data=True):
            label = data.get("label")
            view.add_edge(u, v, None if label is None else str(label))
        return view
    inner = getattr(graph, "graph", None)
    if not is_task_graph(graph) and is_task_graph(inner):
        graph = inner
    if not is_task_graph(graph):
        raise TypeError(
            f"cannot draw a {type(graph).__name__}; pass a TaskGraph (wf.graph), a workflow, "
            "or a networkx DiGraph (wf.graph.nx_graph())"
        )
    for node in graph.nodes:
        view.add_node(node, graph.task(node))
    for u, v in graph.edges:
        view.add_edge(u, v)
    return view


def container_view(view: GraphView) -> tuple[GraphView, dict[str, dict[str, Any]]]:
    """Upstream's container layout: each group becomes a box holding its members and
    what they lead to short of the group's own successors; edges run to and from the box.

    Returns the changed graph and, per group id, its ``tasks``, ``predecessors``,
    ``successors`` and ``label``. Members are listed in order, then what they reach
    depth first (upstream lists a set, in no fixed order)."""
    display = view.copy()
    boxes: dict[str, dict[str, Any]] = {}
    for node, group in view.groups().items():
        member_ids = [t.task_id for t in group.tasks]
        external = [s for s in view.successors(node) if s not in member_ids]
        for member in group.tasks:
            if member.task_id not in display:
                display.add_node(member.task_id, member)
        inside = _inside(view, member_ids, set(external))
        boxes[str(node)] = {
            "tasks": inside,
            "predecessors": view.predecessors(node),
            "successors": external,
            "label": str(node),
        }
        for task_id in inside:
            for pred in display.predecessors(task_id):
                if pred not in inside:
                    display.remove_edge(pred, task_id)
            for succ in display.successors(task_id):
                if succ in external:
                    display.remove_edge(task_id, succ)
    return display, boxes


def _inside(view: GraphView, member_ids: list[str], external: set[Any]) -> list[Any]:
    found: list[Any] = list(dict.fromkeys(member_ids))
    seen: set[Any] = set()
    stack = [m for m in reversed(member_ids) if m in view]
    while stack:
        node = stack.pop()
        if node in seen or node in external:
            continue
        seen.add(node)
        if node not in found:
            found.append(node)
        stack.extend(reversed([s for s in view.successors(node) if s not in seen]))
    return found


__all__ = ["GraphView", "as_view", "container_view", "is_networkx", "is_task_graph"]
